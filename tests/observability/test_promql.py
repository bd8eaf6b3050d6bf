"""The PromQL lexer the dashboard test relies on: it finds every metric name an expression reads and
nothing else (functions, keywords, labels, strings, numbers, durations)."""

from __future__ import annotations

import pytest

from tests.support.promql import metric_names


def test_a_quantile_over_a_histogram_reads_only_the_bucket_series() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(aisched_scheduling_cycle_duration_seconds_bucket[5m])))"
    )
    assert metric_names(expr) == ["aisched_scheduling_cycle_duration_seconds_bucket"]


def test_a_known_expression_yields_each_name_as_often_as_it_is_named() -> None:
    expr = """
        sum by (tenant) (aisched_tenant_gpus{kind="used"})   # used
          / on (tenant) group_left
        sum without (kind) (aisched_tenant_gpus{kind="guaranteed", tenant!~"a|b"})
        > bool 0.5 * scalar(max(rate(aisched_preemptions_total[5m] offset -1h30m)))
        or vector(1)
    """
    assert metric_names(expr) == ["aisched_tenant_gpus", "aisched_tenant_gpus", "aisched_preemptions_total"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        # Label lists of every modifier, with or without parentheses after group_left/right.
        ("a * on (t) group_left (k) b * ignoring(x) group_right c", ["a", "b", "c"]),
        ("sum(x) by (le, instance)", ["x"]),
        ("topk(5, sum without (pod) (x))", ["x"]),
        ("a and b or c unless d", ["a", "b", "c", "d"]),
        ("SUM BY (le) (x) > Inf < NaN", ["x"]),
        # Label matchers: label names, operators and values are not metrics.
        ('x{le="+Inf", le=~"0\\\\.5|1", job!="sum", by!~"rate"}', ["x"]),
        ('x{a=~"\\"}{("}', ["x"]),
        ("x{a='single', b=`raw}`,}", ["x"]),
        # A metric named in its braces.
        ('{__name__="aisched_gpus_allocated", job="x"}', ["aisched_gpus_allocated"]),
        ('{"aisched.dotted", job="x"}', ["aisched.dotted"]),
        ('{__name__=~"aisched_.*"}', []),
        # Durations, ranges, subqueries, @ and offsets.
        ("max_over_time(rate(x[5m])[1h:1m]) offset 5m", ["x"]),
        ("x @ start() - x @ 1609746000 offset 1d", ["x", "x"]),
        ("rate(x[$__rate_interval]) * ${factor}", ["x"]),
        # Function arguments that are strings or numbers.
        ('label_replace(up, "dst", "$1", "src", "(.*)")', ["up"]),
        ('count_values("version", build_info) + 0x1F + 1e-3 + .5', ["build_info"]),
        # Recording-rule names, and comments.
        ("job:requests:rate5m # the rule's output\n + other", ["job:requests:rate5m", "other"]),
        ("vector(1) + time()", []),
    ],
)
def test_metric_names_are_told_apart_from_everything_else(expr: str, names: list[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(x[5m])",
        "sum(x))",
        "x{job='a')",
        "x ? y",
        "x{job}",
        "rate(x[[5m]])",
        "5mx",
    ],
)
def test_what_the_lexer_cannot_read_is_an_error_not_a_missed_name(expr: str) -> None:
    with pytest.raises(ValueError, match=r"cannot read|unbalanced|unclosed"):
        metric_names(expr)
