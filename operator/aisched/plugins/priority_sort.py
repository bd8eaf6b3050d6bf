"""PrioritySort: higher priority first, then the gang that has waited longest, then by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.types import Gang

NAME: Final = "PrioritySort"


class PrioritySort:
    name = NAME

    def less(self, a: Gang, b: Gang) -> bool:
        return (-a.priority, a.created, a.key) < (-b.priority, b.created, b.key)


def new(args: Mapping[str, Any]) -> PrioritySort:
    return PrioritySort()
