"""A byte-level text corpus that ships with every Python: the standard library's own source files.

`FILES` is a fixed, sorted list of modules present in CPython 3.9–3.13 alike (none removed by PEP 594,
none turned into a package, none split out by Linux distributions), read from
`sysconfig.get_paths()["stdlib"]`. The file *list* is identical everywhere (`list_digest()` pins it); the
bytes follow the Python version (`corpus_digest()` tells two machines' corpora apart). Tokens are bytes
(vocabulary 256). Split by file, so no validation text is seen in training: every `VAL_EVERY`-th file
of the list is validation.
"""
from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..errors import require

VOCAB = 256
VAL_EVERY = 8
FILES: tuple[str, ...] = tuple(sorted((
    "_pydecimal.py", "abc.py", "argparse.py", "ast.py", "base64.py", "bdb.py", "bisect.py", "calendar.py", "cmd.py",
    "code.py", "codeop.py", "collections/__init__.py", "colorsys.py", "configparser.py", "contextlib.py", "copy.py",
    "csv.py", "dataclasses.py", "difflib.py", "dis.py", "doctest.py", "email/message.py", "enum.py", "filecmp.py",
    "fileinput.py", "fnmatch.py", "fractions.py", "ftplib.py", "functools.py", "getopt.py", "gettext.py", "glob.py",
    "graphlib.py", "heapq.py", "hmac.py", "html/parser.py", "http/client.py", "imaplib.py", "inspect.py",
    "ipaddress.py", "json/__init__.py", "json/decoder.py", "json/encoder.py", "keyword.py", "locale.py",
    "logging/__init__.py", "mailbox.py", "netrc.py", "numbers.py", "operator.py", "optparse.py", "pickle.py",
    "plistlib.py", "pprint.py", "pyclbr.py", "queue.py", "quopri.py", "random.py", "reprlib.py", "rlcompleter.py",
    "runpy.py", "sched.py", "secrets.py", "selectors.py", "shlex.py", "shutil.py", "smtplib.py", "socket.py",
    "stat.py", "statistics.py", "string.py", "struct.py", "subprocess.py", "tarfile.py", "tempfile.py",
    "textwrap.py", "threading.py", "timeit.py", "token.py", "tokenize.py", "trace.py", "traceback.py",
    "tracemalloc.py", "types.py", "typing.py", "unittest/case.py", "urllib/parse.py", "uuid.py", "warnings.py",
    "wave.py", "weakref.py", "webbrowser.py", "xml/dom/minidom.py", "zipapp.py", "zipimport.py")))
# sha256 of "\n".join(FILES): changes only when the list changes (tests/tasks/test_stdlib_bytes.py pins it)
LIST_SHA256 = "67d625e03add53b98112158d7e116311ecb64fa67e5689f8482132b5493d5968"


def stdlib_root() -> Path:
    """This interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def list_digest(files: tuple[str, ...] = FILES) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


def _read(root: Path, files: tuple[str, ...]) -> list[bytes]:
    missing = [f for f in files if not (root / f).is_file()]
    require(not missing, f"standard-library files {missing[:3]} are missing under {root}: the corpus needs a full "
                         "CPython 3.9-3.13 standard library (pass root= a folder that has them)")
    return [(root / f).read_bytes() for f in files]


@dataclass(frozen=True)
class ByteCorpus:
    """Training and validation bytes as uint8 tensors, and the files each came from."""

    train: Tensor
    val: Tensor
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    digest: str  # sha256 of the bytes (train files then validation files, in list order)


@lru_cache(maxsize=4)
def _load(root: str) -> ByteCorpus:
    data = _read(Path(root), FILES)
    is_val = [i % VAL_EVERY == VAL_EVERY - 1 for i in range(len(FILES))]
    pick = lambda v: [d for d, s in zip(data, is_val) if s == v]  # noqa: E731
    files = lambda v: tuple(f for f, s in zip(FILES, is_val) if s == v)  # noqa: E731
    tr, va = b"".join(pick(False)), b"".join(pick(True))
    as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
    return ByteCorpus(as_tensor(tr), as_tensor(va), files(False), files(True), hashlib.sha256(tr + va).hexdigest())


def stdlib_corpus(root: str | Path | None = None) -> ByteCorpus:
    """The corpus from `root` (default: this interpreter's standard library); cached per root."""
    return _load(str(Path(root) if root is not None else stdlib_root()))


def corpus_digest(root: str | Path | None = None) -> str:
    return stdlib_corpus(root).digest


def batch(data: Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`batch_size` random windows: inputs x [B, T] and next-byte targets y [B, T] (int64)."""
    require(batch_size >= 1 and seq_len >= 1, f"batch_size={batch_size}, seq_len={seq_len} must be positive")
    require(len(data) > seq_len + 1, f"the data ({len(data)} bytes) is shorter than a window of {seq_len + 1}")
    start = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=generator)
    idx = start[:, None] + torch.arange(seq_len + 1)
    w = data[idx].long()
    return w[:, :-1], w[:, 1:]


def fixed_batch(data: Tensor, batch_size: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """`batch_size` evenly spaced windows (the same everywhere: for validation losses and probes)."""
    require(len(data) > seq_len + 1, f"the data ({len(data)} bytes) is shorter than a window of {seq_len + 1}")
    start = torch.linspace(0, len(data) - seq_len - 2, batch_size).long()
    w = data[start[:, None] + torch.arange(seq_len + 1)].long()
    return w[:, :-1], w[:, 1:]
