"""The offline byte corpus: a fixed file list (pinned digest), the split by file, windows against slicing by hand,
and a clear error when a file is missing."""
from __future__ import annotations

import hashlib
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

from lazyrich.errors import LazyrichError
from lazyrich.tasks import stdlib_bytes as sb


def test_file_list_is_fixed_and_sorted():
    assert list(sb.FILES) == sorted(set(sb.FILES)) and len(sb.FILES) == 95
    # the list itself is pinned: changing it changes every corpus (say so in docs/usermodels.md)
    assert hashlib.sha256("\n".join(sb.FILES).encode()).hexdigest() == sb.LIST_SHA256 == sb.list_digest()


def test_corpus_is_the_files_bytes_split_by_file():
    root = Path(sysconfig.get_paths()["stdlib"])
    c = sb.stdlib_corpus()
    val = [f for i, f in enumerate(sb.FILES) if i % sb.VAL_EVERY == sb.VAL_EVERY - 1]
    assert c.val_files == tuple(val) and set(c.train_files) | set(val) == set(sb.FILES) and not set(c.train_files) & set(val)
    train_bytes = b"".join((root / f).read_bytes() for f in c.train_files)
    val_bytes = b"".join((root / f).read_bytes() for f in val)
    assert bytes(c.train.numpy()) == train_bytes and bytes(c.val.numpy()) == val_bytes
    assert c.digest == hashlib.sha256(train_bytes + val_bytes).hexdigest() == sb.corpus_digest()
    assert len(c.train) > 2_000_000 and len(c.val) > 100_000 and c.train.dtype == torch.uint8


def test_windows_are_next_byte_pairs():
    data = torch.arange(200, dtype=torch.uint8)
    x, y = sb.batch(data, 5, 7, torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (5, 7) and x.dtype == torch.int64
    for row_x, row_y in zip(x, y):
        s = int(row_x[0])  # data[i] == i, so the first token is the window's start
        assert row_x.tolist() == list(range(s, s + 7)) and row_y.tolist() == list(range(s + 1, s + 8))
    x2, _ = sb.batch(data, 5, 7, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2)  # seeded
    fx, fy = sb.fixed_batch(data, 4, 10)
    assert fx[:, 0].tolist() == [0, 62, 125, 188] and torch.equal(fy[:, :-1], fx[:, 1:])
    with pytest.raises(LazyrichError, match="shorter than a window"):
        sb.batch(data[:5], 2, 7, torch.Generator())


def test_missing_file_is_a_clear_error(tmp_path):
    root = Path(sysconfig.get_paths()["stdlib"])
    for f in sb.FILES[:3]:  # a partial copy of the library
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / f, tmp_path / f)
    with pytest.raises(LazyrichError, match=r"missing under .*full\s+CPython"):
        sb.stdlib_corpus(tmp_path)
