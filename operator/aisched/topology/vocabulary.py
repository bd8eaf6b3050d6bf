"""`Vocabulary`: strings (label values, rack names, GPU models, taints) as dense integer ids, so
the snapshot's columns hold integers that numpy compares in one pass."""

from __future__ import annotations

__all__ = ["Vocabulary"]


class Vocabulary:
    """Strings ↔ dense integer ids (label values, rack names, GPU models, taints)."""

    def __init__(self) -> None:
        self._ids: dict[object, int] = {}
        self.values: list[object] = []

    def id(self, value: object) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.values)
            self.values.append(value)
        return found

    def get(self, value: object) -> int:
        """The id of `value`, or -1 if it was never seen (so it matches no node)."""
        return self._ids.get(value, -1)

    def __len__(self) -> int:
        return len(self.values)
