"""The field's unit, computed in one place: a set's size in bits per class (the whole file's
bits over its classes, what every table of the field reports)."""

from __future__ import annotations


def bits_per_class(nbytes: int, classes: int) -> float:
    return 8 * nbytes / classes
