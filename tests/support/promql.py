"""The metric names a PromQL expression reads, found by a small lexer.

Only as much of PromQL as it takes to tell a metric name from everything else an expression holds:
function calls, aggregation and set operators, the label lists of `by`/`without`/`on`/`ignoring`/
`group_left`/`group_right`, label matchers in `{}`, strings, numbers, `Inf`/`NaN`, ranges and
subqueries in `[]`, `offset` durations, comments, and Grafana's `$variables`. Anything it cannot
read is a ValueError rather than a name quietly missed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

__all__ = ["metric_names", "tokens"]

_TOKEN: Final = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\[\]]*\])                         # [5m], [1h:1m], [$__rate_interval]
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])  # after offset: 5m, 1h30m
    | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))(?![\w.])
    | (?P<variable>\$\{[^}\s]*\}|\$\w+)
    | (?P<identifier>[A-Za-z_:][\w:]*)
    | (?P<operator>=~|!~|==|!=|>=|<=|[-+*/%^=<>@,])
    | (?P<open>[({])
    | (?P<close>[)}])
    """,
    re.VERBOSE | re.ASCII,
)

_AGGREGATIONS: Final = {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"}
_AGGREGATIONS_WITH_PARAMETER: Final = {"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"}
_OPERATORS_AND_MODIFIERS: Final = {"and", "or", "unless", "atan2", "bool", "offset"}
_FLOAT_LITERALS: Final = {"inf", "nan"}
#: Words that are never metric names, whatever follows them (PromQL reads them case-insensitively).
_KEYWORDS: Final = frozenset(
    _AGGREGATIONS | _AGGREGATIONS_WITH_PARAMETER | _OPERATORS_AND_MODIFIERS | _FLOAT_LITERALS
)
#: Modifiers followed by a parenthesised list of label names (optional after group_left/right).
_LABEL_LISTS: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_MATCH_OPERATORS: Final = frozenset({"=", "!=", "=~", "!~"})
_CLOSING: Final = {"(": ")", "{": "}"}


class Token(NamedTuple):
    kind: str
    text: str
    at: int


def tokens(expr: str) -> Iterator[Token]:
    """The tokens of `expr`, white space and comments left out."""
    at = 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None or match.lastgroup is None:
            raise ValueError(f"cannot read {expr!r} at offset {at}: {expr[at : at + 10]!r}")
        if match.lastgroup != "space":
            yield Token(match.lastgroup, match.group(), at)
        at = match.end()


def metric_names(expr: str) -> list[str]:
    """Every metric name `expr` reads, in order, once per time it is named."""
    toks = list(tokens(expr))
    _check_balanced(expr, toks)
    names: list[str] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        following = toks[i + 1] if i + 1 < len(toks) else None
        opens_call = following is not None and following.text == "("
        if tok.kind == "identifier" and tok.text.lower() in _LABEL_LISTS:
            i = _after_group(toks, i + 1) if opens_call else i + 1
            continue
        if tok.kind == "identifier" and tok.text.lower() not in _KEYWORDS and not opens_call:
            names.append(tok.text)
        elif tok.text == "{":
            end = _after_group(toks, i)
            names.extend(_names_in_matchers(toks[i + 1 : end - 1]))
            i = end
            continue
        i += 1
    return names


def _after_group(toks: list[Token], start: int) -> int:
    """The index just past the bracket that closes the one at `start`."""
    depth = 0
    for i in range(start, len(toks)):
        if toks[i].kind == "open":
            depth += 1
        elif toks[i].kind == "close":
            depth -= 1
            if depth == 0:
                return i + 1
    raise AssertionError("brackets were checked to balance")


def _names_in_matchers(inside: list[Token]) -> Iterator[str]:
    """Metric names given inside `{...}`: `__name__="x"`, or a bare quoted name (`{"x", a="b"}`)."""
    matchers: list[list[Token]] = [[]]
    for tok in inside:
        if tok.text == ",":
            matchers.append([])
        else:
            matchers[-1].append(tok)
    for matcher in matchers:
        if len(matcher) == 1 and matcher[0].kind == "string":
            yield _unquoted(matcher[0].text)
        elif len(matcher) == 3 and matcher[1].text in _MATCH_OPERATORS:
            label, op, value = matcher
            if _unquoted(label.text) == "__name__" and op.text == "=" and value.kind == "string":
                yield _unquoted(value.text)
        elif matcher:
            raise ValueError(f"cannot read the label matcher {' '.join(t.text for t in matcher)!r}")


def _unquoted(text: str) -> str:
    if text[:1] in "\"'`":
        inner = text[1:-1]
        return inner if text[0] == "`" else re.sub(r"\\(.)", r"\1", inner)
    return text


def _check_balanced(expr: str, toks: list[Token]) -> None:
    stack: list[Token] = []
    for tok in toks:
        if tok.kind == "open":
            stack.append(tok)
        elif tok.kind == "close" and (not stack or _CLOSING[stack.pop().text] != tok.text):
            raise ValueError(f"unbalanced {tok.text!r} in {expr!r} at offset {tok.at}")
    if stack:
        raise ValueError(f"unclosed {stack[-1].text!r} in {expr!r} at offset {stack[-1].at}")
