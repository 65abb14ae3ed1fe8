"""A word co-occurrence corpus that ships with every CPython: the English text of Python's documentation
(`pydoc_data.topics`, ≈ 465 k characters), for the quadratic word embedding models (Karkada et al. 2025,
arXiv 2502.09863; lazyrich.theory.word_embeddings).

Deterministic pipeline (no randomness, no downloads):
- text: the topics joined in sorted key order with a blank line between them;
- tokens: lowercase ASCII words of at least two letters (regex ``[a-z]{2,}`` on the lowercased text);
  digits, punctuation and one-letter tokens (``x``, the ``s`` of "it's") separate words;
- vocabulary: the `vocab_size` most frequent tokens, ties broken alphabetically;
- co-occurrence: C_ij = #{(p, q) : 1 ≤ |p − q| ≤ window, token_p = i, token_q = j} over the token stream
  *with* out-of-vocabulary tokens kept as positions (they only count as distance), so C is symmetric;
  P_ij = C_ij / Σ C and P_i = Σ_j P_ij (the paper's co-occurrence and unigram distributions).

The text differs between CPython releases; `Corpus.digest` (sha256 of the text) names the one used, and
docs/theory/word_embeddings.md gives the statistics measured on CPython 3.11.7.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import require

TOKEN = re.compile(r"[a-z]{2,}")


def pydoc_text() -> str:
    """The documentation text: `pydoc_data.topics.topics` values in sorted key order, blank-line separated."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def tokenize(text: str) -> list[str]:
    """Lowercase words of ≥ 2 ASCII letters, in order."""
    return TOKEN.findall(text.lower())


def top_vocabulary(tokens: list[str], vocab_size: int) -> tuple[str, ...]:
    """The `vocab_size` most frequent tokens, most frequent first, ties alphabetical."""
    counts = Counter(tokens)
    require(isinstance(vocab_size, int) and 2 <= vocab_size <= len(counts),
            f"vocab_size={vocab_size} must be an integer in [2, {len(counts)}] (the distinct tokens of the text)")
    return tuple(sorted(counts, key=lambda w: (-counts[w], w))[:vocab_size])


def cooccurrence(tokens: list[str], vocab: tuple[str, ...], window: int) -> np.ndarray:
    """Symmetric counts C [V, V] of in-vocabulary pairs at distance 1..window in the token stream."""
    require(isinstance(window, int) and window >= 1, f"window={window} must be a positive integer (word distance)")
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.fromiter((index.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
    V = len(vocab)
    C = np.zeros((V, V))
    for off in range(1, window + 1):
        a, b = ids[:-off], ids[off:]
        keep = (a >= 0) & (b >= 0)
        np.add.at(C, (a[keep], b[keep]), 1.0)
        np.add.at(C, (b[keep], a[keep]), 1.0)  # each unordered pair once per direction: C symmetric
    return C


@dataclass(frozen=True)
class Corpus:
    """Co-occurrence statistics of a tokenized text: `counts` C [V, V], `vocab`, the number of `tokens`,
    the `window`, the `unigram` counts of the vocabulary in the stream and the text's sha256 `digest`."""

    vocab: tuple[str, ...]
    counts: np.ndarray
    unigram: np.ndarray
    tokens: int
    window: int
    digest: str

    @property
    def joint(self) -> np.ndarray:
        """P_ij = C_ij / Σ C (sums to 1, symmetric)."""
        return self.counts / self.counts.sum()

    @property
    def marginal(self) -> np.ndarray:
        """P_i = Σ_j P_ij."""
        return self.joint.sum(1)

    def index(self, word: str) -> int:
        require(word in self.vocab, f"{word!r} is not in the {len(self.vocab)}-word vocabulary; use one of "
                                    f"{', '.join(self.vocab[:8])}, ...")
        return self.vocab.index(word)


def corpus_from_text(text: str, vocab_size: int, window: int) -> Corpus:
    """The `Corpus` of any text under the pipeline of this module."""
    toks = tokenize(text)
    vocab = top_vocabulary(toks, vocab_size)
    C = cooccurrence(toks, vocab, window)
    counts = Counter(toks)
    zero = [w for w, row in zip(vocab, C) if not row.any()]
    require(not zero, f"{len(zero)} vocabulary words never co-occur with another within window={window} "
                      f"(e.g. {zero[:1]}); use a larger window or a smaller vocab_size")
    uni = np.array([counts[w] for w in vocab], float)
    for arr in (C, uni):
        arr.setflags(write=False)  # pydoc_corpus caches: callers share these arrays
    return Corpus(vocab, C, uni, len(toks), window, hashlib.sha256(text.encode()).hexdigest())


@lru_cache(maxsize=8)
def pydoc_corpus(vocab_size: int = 200, window: int = 5) -> Corpus:
    """Co-occurrence statistics of Python's documentation (`pydoc_data.topics`): top-`vocab_size` words,
    symmetric window of `window` words. Cached: treat the arrays as read-only."""
    return corpus_from_text(pydoc_text(), vocab_size, window)
