"""Data: synthetic tasks (teacher-student, whitened regression); real small data that ship with Python or
its packages: a word co-occurrence corpus from Python's own documentation (`corpus`) and a byte-level
corpus of the standard library's source (`stdlib_bytes`)."""
from .corpus import Corpus, pydoc_corpus
from .stdlib_bytes import ByteCorpus, stdlib_corpus
from .synthetic import sphere, teacher_student, whitened_regression

__all__ = ["teacher_student", "whitened_regression", "sphere", "Corpus", "pydoc_corpus", "ByteCorpus", "stdlib_corpus"]
