"""PrioritySort: higher priority first, then submission order (creation time, then
sequence; the key only to make the order total)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.handle import Handle
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import Gang

NAME: Final = "PrioritySort"


class PrioritySort:
    name = NAME

    def less(self, a: Gang, b: Gang) -> bool:
        return (-a.priority, a.submitted) < (-b.priority, b.submitted)


def new(args: Mapping[str, Any], handle: Handle) -> PrioritySort:
    parse_args(NAME, NoArgs, args)
    return PrioritySort()
