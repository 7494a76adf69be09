"""Name -> implementation tables filled by decorators, so a new kind is one registration."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def registrar(table: dict[str, T]) -> Callable[[str], Callable[[T], T]]:
    """A decorator factory that files each decorated implementation under its name."""
    def register(name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in table:
                raise ValueError(f"{name!r} is registered twice")
            table[name] = item
            return item

        return decorate

    return register
