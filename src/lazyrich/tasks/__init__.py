"""Data: synthetic tasks (teacher-student, whitened regression); real small data ship with packages."""
from .synthetic import sphere, teacher_student, whitened_regression

__all__ = ["teacher_student", "whitened_regression", "sphere"]
