"""The pydoc co-occurrence corpus: the pipeline against slow obvious implementations written here, the
statistics stated in docs/theory/word_embeddings.md (pinned for the CPython text they were measured on),
and clear errors for bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

from lazyrich.errors import LazyrichError
from lazyrich.tasks.corpus import cooccurrence, corpus_from_text, pydoc_corpus, pydoc_text, tokenize, top_vocabulary

# measured on CPython 3.11.7 (docs/theory/word_embeddings.md); other releases ship other text
DIGEST_3_11_7 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"


def slow_tokens(text: str) -> list[str]:
    """Character loop: maximal runs of ASCII letters, lowercased, kept when ≥ 2 long."""
    out, cur = [], ""
    for ch in text.lower() + " ":
        if "a" <= ch <= "z":
            cur += ch
        else:
            if len(cur) >= 2:
                out.append(cur)
            cur = ""
    return out


def slow_counts(tokens: list[str], vocab: tuple[str, ...], window: int) -> np.ndarray:
    """Every ordered pair of positions at distance 1..window with both words in the vocabulary."""
    C = np.zeros((len(vocab), len(vocab)))
    for p, a in enumerate(tokens):
        for q in range(max(0, p - window), min(len(tokens), p + window + 1)):
            if q != p and a in vocab and tokens[q] in vocab:
                C[vocab.index(a), vocab.index(tokens[q])] += 1
    return C


TEXT = ("The cat sat on the mat; the dog sat on the log. A cat's toy: 3 mice, x = y! "
        "Dogs and cats -- the end, THE END.")


def test_tokens_and_counts_equal_the_slow_pipeline():
    toks = tokenize(TEXT)
    assert toks == slow_tokens(TEXT)
    assert "x" not in toks and "s" not in toks and toks[:3] == ["the", "cat", "sat"]
    vocab = top_vocabulary(toks, 6)
    assert vocab[0] == "the" and list(vocab) == sorted(vocab, key=lambda w: (-toks.count(w), w))
    for window in (1, 2, 4):
        np.testing.assert_array_equal(cooccurrence(toks, vocab, window), slow_counts(toks, vocab, window))


def test_pydoc_statistics_as_documented():
    c = pydoc_corpus(200, 5)
    P = c.joint
    assert P.shape == (200, 200) and len(c.vocab) == 200 and c.window == 5
    assert np.array_equal(P, P.T) and abs(P.sum() - 1) < 1e-12 and (c.marginal > 0).all()
    assert len(pydoc_text()) > 400_000  # ≈ 465 k characters in every CPython 3.x
    if c.digest != DIGEST_3_11_7:
        pytest.skip("another CPython release: its documentation text differs from the one the docs state")
    assert c.tokens == 60_221 and c.counts.sum() == 274_014
    assert c.vocab[:5] == ("the", "is", "of", "in", "to") and c.unigram[0] == 4585
    assert c.vocab[-1] == "evaluated" and c.unigram[-1] == 53


@pytest.mark.parametrize("kwargs, message", [
    (dict(vocab_size=1), "vocab_size=1 must be"),
    (dict(vocab_size=10**6), "vocab_size=1000000 must be"),
    (dict(window=0), "window=0 must be a positive integer"),
])
def test_bad_arguments_give_one_clear_line(kwargs, message):
    args = dict(vocab_size=5, window=2) | kwargs
    with pytest.raises(LazyrichError, match=message) as err:
        corpus_from_text(TEXT, **args)
    assert "\n" not in str(err.value)


def test_word_without_neighbours_is_refused():
    with pytest.raises(LazyrichError, match="never co-occur"):
        corpus_from_text("aa xx bb bb bb xx aa", vocab_size=2, window=1)  # aa only meets xx (not in the vocabulary)
    with pytest.raises(LazyrichError, match="not in the 200-word vocabulary"):
        pydoc_corpus().index("qwertyuiop")
