"""Custom resources are pruned, defaulted and validated against their CRD as the API server does it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.emulator.cel import CelEvaluator
from aisched.emulator.schema import (
    OMIT,
    ErrorType,
    FieldError,
    default,
    prune,
    rule_errors,
    unknown_field_messages,
    validate,
    validate_custom_resource,
)
from tests.api.test_validation import CASES
from tests.support import objects

ROOT = Path(__file__).parents[2]
NOT_CHECKED = (
    '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
    "correct the existing errors to complete validation"
)


def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schemas


SCHEMAS = _crd_schemas()


@pytest.fixture(scope="module")
def cel() -> CelEvaluator:
    return CelEvaluator()


def _admit(body: dict[str, Any], cel: CelEvaluator) -> tuple[dict[str, Any], list[FieldError], list[str]]:
    return validate_custom_resource(SCHEMAS[body["kind"]], body, cel=cel)


def _strs(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# -- the project's CRDs ----------------------------------------------------------------------------


def test_the_crds_of_all_three_kinds_are_loaded() -> None:
    assert set(SCHEMAS) == {"AIJob", "TenantQuota", "GPUNodeTopology"}


def _examples() -> list[Any]:
    docs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        docs += [
            pytest.param(doc, id=f"{path.name}:{doc['metadata']['name']}")
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["kind"] in SCHEMAS
        ]
    return docs


@pytest.mark.parametrize("body", _examples())
def test_every_example_is_accepted_unchanged_but_for_defaults(
    body: dict[str, Any], cel: CelEvaluator
) -> None:
    stored, errors, dropped = _admit(body, cel)
    assert errors == []
    assert dropped == []
    assert prune(SCHEMAS[body["kind"]], stored) == (stored, [])


@pytest.mark.parametrize("factory", [objects.aijob, objects.tenantquota, objects.gpunodetopology])
def test_the_test_objects_are_accepted(factory: Callable[[], dict[str, Any]], cel: CelEvaluator) -> None:
    assert _admit(factory(), cel)[1:] == ([], [])


@pytest.mark.parametrize(
    ("factory", "mutate", "path"),
    [pytest.param(case[1], case[2], case[3], id=case[0]) for case in CASES if case[5]],
)
def test_the_crd_refuses_a_broken_spec_on_the_field_its_rule_names(
    factory: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], None],
    path: str,
    cel: CelEvaluator,
) -> None:
    body = factory()
    mutate(body)
    _, errors, _ = _admit(body, cel)
    assert path in [e.path for e in errors], _strs(errors)


# Where the API server reports a structural violation elsewhere than the models do.
_SCHEMA_PATHS = {
    "two roles with one name": "spec.replicas[1]",
    "a namespace twice": "spec.namespaces[1]",
    "a resource name with spaces": None,  # a CRD cannot constrain the keys of a map
}


@pytest.mark.parametrize(
    ("name", "factory", "mutate", "path"),
    [pytest.param(case[0], case[1], case[2], case[3], id=case[0]) for case in CASES if not case[5]],
)
def test_the_crd_schema_refuses_what_the_models_refuse_structurally(
    name: str,
    factory: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], None],
    path: str,
    cel: CelEvaluator,
) -> None:
    body = factory()
    mutate(body)
    _, errors, dropped = _admit(body, cel)
    expected = _SCHEMA_PATHS.get(name, path)
    if expected is None:
        assert errors == []
    else:
        assert expected in [e.path for e in errors] + dropped, _strs(errors)


def test_an_aijob_gets_the_crd_defaults(cel: CelEvaluator) -> None:
    body = objects.aijob()
    body["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 2}
    stored, errors, _ = _admit(body, cel)
    assert errors == []
    assert stored["spec"]["preemptible"] is True
    assert stored["spec"]["elastic"]["role"] == "worker"
    assert stored["spec"]["topology"] == {"policy": "Required", "level": "rack"}
    assert "restart" not in stored["spec"], "defaults apply inside present objects only"
    assert body["spec"]["elastic"] == {"minReplicas": 1, "maxReplicas": 2}, "the input is left alone"


def test_rejected_specs_read_as_the_api_server_writes_them(cel: CelEvaluator) -> None:
    body = objects.aijob()
    body["spec"]["replicas"][0]["count"] = 0
    body["spec"]["gang"] = {"minMember": 20}
    assert _strs(_admit(body, cel)[1]) == [
        "spec.replicas[0].count: Invalid value: 0: spec.replicas[0].count in body should be greater than "
        "or equal to 1",
        'spec.gang.minMember: Invalid value: "object": must not exceed the total number of replicas',
    ]


def test_a_misspelt_field_is_dropped_and_reported(cel: CelEvaluator) -> None:
    body = objects.aijob()
    body["spec"]["gang"] = {"minMembers": 2}
    body["metadata"]["colour"] = "blue"
    stored, errors, dropped = _admit(body, cel)
    assert errors == []
    assert dropped == ["metadata.colour", "spec.gang.minMembers"]
    assert stored["spec"]["gang"] == {}
    assert unknown_field_messages(dropped) == [
        'unknown field "metadata.colour"',
        'unknown field "spec.gang.minMembers"',
    ]


def test_a_blocking_error_stops_the_cel_rules(cel: CelEvaluator) -> None:
    body = objects.aijob()
    body["spec"]["topology"]["level"] = "datacenter"
    body["spec"]["gang"] = {"minMember": 20}  # breaks a rule, unchecked
    assert _strs(_admit(body, cel)[1]) == [
        'spec.topology.level: Unsupported value: "datacenter": '
        'supported values: "nvlink", "node", "rack", "block"',
        NOT_CHECKED,
    ]


# -- FieldError -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (FieldError("spec.a", ErrorType.REQUIRED), "spec.a: Required value"),
        (FieldError("spec.a", ErrorType.REQUIRED, "because"), "spec.a: Required value: because"),
        (FieldError("spec.a", ErrorType.INVALID, "bad", 0), "spec.a: Invalid value: 0: bad"),
        (FieldError("spec.a", ErrorType.INVALID, "bad", 1.5), "spec.a: Invalid value: 1.5: bad"),
        (FieldError("spec.a", ErrorType.INVALID, "bad", True), "spec.a: Invalid value: true: bad"),
        (
            FieldError("spec.a", ErrorType.INVALID, "bad", 'say "hi"\n'),
            'spec.a: Invalid value: "say \\"hi\\"\\n": bad',
        ),
        (FieldError("spec.a", ErrorType.INVALID, "bad", None), 'spec.a: Invalid value: "null": bad'),
        (FieldError("spec.a", ErrorType.INVALID, "bad", OMIT), "spec.a: Invalid value: bad"),
        (FieldError("spec.a", ErrorType.TYPE_INVALID, "t", "string"), 'spec.a: Invalid value: "string": t'),
        (FieldError("spec.a", ErrorType.FORBIDDEN, "no", 3), "spec.a: Forbidden: no"),
        (
            FieldError("spec.a", ErrorType.TOO_LONG, "may not be more than 3 bytes", "abcd"),
            "spec.a: Too long: may not be more than 3 bytes",
        ),
        (
            FieldError("spec.a", ErrorType.TOO_MANY, "must have at most 1 items", 2),
            "spec.a: Too many: 2: must have at most 1 items",
        ),
        (FieldError("spec.a[1]", ErrorType.DUPLICATE, value="x"), 'spec.a[1]: Duplicate value: "x"'),
        (
            FieldError("spec.a[1]", ErrorType.DUPLICATE, value={"name": "m", "port": 80}),
            'spec.a[1]: Duplicate value: map[string]interface {}{"name":"m", "port":80}',
        ),
        (
            FieldError("spec.a", ErrorType.NOT_SUPPORTED, 'supported values: "x"', "y"),
            'spec.a: Unsupported value: "y": supported values: "x"',
        ),
    ],
)
def test_a_field_error_renders_like_kubernetes_field_error(error: FieldError, text: str) -> None:
    assert str(error) == text


def test_a_field_error_carries_the_status_cause_reason_and_message() -> None:
    error = FieldError("spec.a", ErrorType.TYPE_INVALID, "spec.a in body must be of type integer", "string")
    assert error.reason == "FieldValueTypeInvalid"
    assert error.body == 'Invalid value: "string": spec.a in body must be of type integer'


# -- the structural schema, keyword by keyword -------------------------------------------------------


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    return _strs(validate(_obj(x=schema), {"x": value}))


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"type": "integer"}, "4", 'x: Invalid value: "string": x in body must be of type integer: "string"'),
        ({"type": "integer"}, 1.5, 'x: Invalid value: "number": x in body must be of type integer: "number"'),
        (
            {"type": "integer"},
            True,
            'x: Invalid value: "boolean": x in body must be of type integer: "boolean"',
        ),
        ({"type": "number"}, "1", 'x: Invalid value: "string": x in body must be of type number: "string"'),
        (
            {"type": "boolean"},
            "yes",
            'x: Invalid value: "string": x in body must be of type boolean: "string"',
        ),
        ({"type": "string"}, 5, 'x: Invalid value: "integer": x in body must be of type string: "integer"'),
        ({"type": "array"}, {}, 'x: Invalid value: "object": x in body must be of type array: "object"'),
        ({"type": "object"}, [], 'x: Invalid value: "array": x in body must be of type object: "array"'),
        ({"type": "string"}, None, 'x: Invalid value: "null": x in body must be of type string: "null"'),
        (
            {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            0.5,
            'x: Invalid value: "number": x in body must be of type integer,string: "number"',
        ),
        (
            {"type": "string", "enum": ["a", "b"]},
            "c",
            'x: Unsupported value: "c": supported values: "a", "b"',
        ),
        ({"type": "integer", "enum": [1, 2]}, 3, 'x: Unsupported value: 3: supported values: "1", "2"'),
        (
            {"type": "integer", "minimum": 1},
            0,
            "x: Invalid value: 0: x in body should be greater than or equal to 1",
        ),
        (
            {"type": "integer", "maximum": 9},
            10,
            "x: Invalid value: 10: x in body should be less than or equal to 9",
        ),
        (
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            0,
            "x: Invalid value: 0: x in body should be greater than 0",
        ),
        (
            {"type": "number", "maximum": 1, "exclusiveMaximum": True},
            1.0,
            "x: Invalid value: 1: x in body should be less than 1",
        ),
        (
            {"type": "number", "maximum": 2147483647},
            3e9,
            "x: Invalid value: 3e+09: x in body should be less than or equal to 2.147483647e+09",
        ),
        ({"type": "integer", "multipleOf": 4}, 6, "x: Invalid value: 6: x in body should be a multiple of 4"),
        (
            {"type": "string", "minLength": 2},
            "a",
            'x: Invalid value: "a": x in body should be at least 2 chars long',
        ),
        ({"type": "string", "maxLength": 2}, "abc", "x: Too long: may not be more than 2 bytes"),
        (
            {"type": "string", "pattern": "^[a-z]+$"},
            "A1",
            "x: Invalid value: \"A1\": x in body should match '^[a-z]+$'",
        ),
        (
            {"type": "string", "format": "date-time"},
            "yesterday",
            'x: Invalid value: "yesterday": x in body must be of type date-time: "yesterday"',
        ),
        (
            {"type": "string", "format": "date-time"},
            "2026-02-30T00:00:00Z",
            'x: Invalid value: "2026-02-30T00:00:00Z": '
            'x in body must be of type date-time: "2026-02-30T00:00:00Z"',
        ),
        (
            {"type": "string", "format": "date"},
            "2026-13-01",
            'x: Invalid value: "2026-13-01": x in body must be of type date: "2026-13-01"',
        ),
        ({"type": "array", "minItems": 1}, [], "x: Invalid value: 0: x in body should have at least 1 items"),
        ({"type": "array", "maxItems": 1}, [1, 2], "x: Too many: 2: must have at most 1 items"),
        (
            {"type": "object", "minProperties": 1},
            {},
            'x: Invalid value: "": x in body should have at least 1 properties',
        ),
        (
            {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}},
            {"a": 1, "b": 2},
            "x: Too many: 2: must have at most 1 items",
        ),
        (
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
            {},
            "x.a: Required value",
        ),
        (
            {"type": "array", "items": {"type": "integer", "minimum": 0}},
            [1, -1],
            "x[1]: Invalid value: -1: x[1] in body should be greater than or equal to 0",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"nvidia.com/gpu": "1"},
            'x[nvidia.com/gpu]: Invalid value: "string": '
            'x[nvidia.com/gpu] in body must be of type integer: "string"',
        ),
        (
            {"anyOf": [{"minimum": 5}, {"maximum": 1}]},
            3,
            'x: Invalid value: "": "x" must validate at least one schema (anyOf)',
        ),
        (
            {"oneOf": [{"minimum": 1}, {"maximum": 5}]},
            3,
            'x: Invalid value: "": "x" must validate one and only one schema (oneOf)',
        ),
        ({"not": {"minimum": 1}}, 3, 'x: Invalid value: "": "x" must not validate the schema (not)'),
        (
            {"allOf": [{"minimum": 5}]},
            3,
            "x: Invalid value: 3: x in body should be greater than or equal to 5",
        ),
    ],
)
def test_each_schema_keyword_refuses_what_it_forbids(
    schema: dict[str, Any], value: Any, expected: str
) -> None:
    assert _errors(schema, value) == [expected]


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, 3),
        ({"type": "integer"}, 3.0),  # JSON has one number type: an integral one is an integer
        ({"type": "number"}, 3),
        ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0.001),
        ({"type": "string", "nullable": True, "minLength": 3}, None),
        ({"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+m$"}, 7),  # patterns constrain strings only
        ({"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+m$"}, "500m"),
        ({"x-kubernetes-preserve-unknown-fields": True}, {"anything": [1, "two", None]}),
        ({"type": "string", "format": "date-time"}, "2026-11-01T10:20:30.123456789+01:00"),
        ({"type": "string", "format": "date-time"}, "2026-12-31T23:59:60Z"),
        ({"type": "string", "enum": ["a"], "maxLength": 1, "pattern": "a"}, "a"),
    ],
)
def test_a_value_the_schema_allows_passes(schema: dict[str, Any], value: Any) -> None:
    assert _errors(schema, value) == []


# -- x-kubernetes-list-type -------------------------------------------------------------------------

LIST_MAP: dict[str, Any] = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name", "port"],
    "items": _obj(name={"type": "string"}, port={"type": "integer"}, note={"type": "string"}),
}


def test_a_list_map_refuses_a_repeated_key_naming_the_second_item() -> None:
    items = [{"name": "a", "port": 1}, {"name": "a", "port": 2}, {"name": "a", "port": 1, "note": "again"}]
    assert _errors(LIST_MAP, items) == [
        'x[2]: Duplicate value: map[string]interface {}{"name":"a", "port":1}'
    ]


def test_a_list_map_reports_each_repeated_key_once() -> None:
    items = [{"name": "a", "port": 1}] * 3
    assert _errors(LIST_MAP, items) == [
        'x[1]: Duplicate value: map[string]interface {}{"name":"a", "port":1}'
    ]


def test_a_list_map_holds_objects_only() -> None:
    errors = _errors({**LIST_MAP, "items": {}}, [{"name": "a", "port": 1}, "b"])
    assert errors == ['x[1]: Invalid value: "b": must be an object for an array of list-type map']


def test_a_list_set_refuses_a_repeated_item() -> None:
    schema = {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    assert _errors(schema, ["a", "b", "a", "b"]) == [
        'x[2]: Duplicate value: "a"',
        'x[3]: Duplicate value: "b"',
    ]
    assert _errors(schema, ["a", "b"]) == []


def test_a_duplicate_does_not_block_the_cel_rules() -> None:
    schema = {**LIST_MAP, "x-kubernetes-validations": [{"rule": "size(self) < 2", "message": "too many"}]}
    items = [{"name": "a", "port": 1}, {"name": "a", "port": 1}]
    assert _errors(schema, items) == [
        'x[1]: Duplicate value: map[string]interface {}{"name":"a", "port":1}',
        'x: Invalid value: "array": too many',
    ]


# -- x-kubernetes-validations -------------------------------------------------------------------------


def _ruled(*rules: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {**_obj(**properties), "x-kubernetes-validations": list(rules)}


def test_a_rule_error_names_the_node_and_its_field_path() -> None:
    schema = _obj(spec=_ruled({"rule": "self.a < self.b", "message": "a before b", "fieldPath": ".a"}))
    assert _strs(validate(schema, {"spec": {"a": 2, "b": 1}})) == [
        'spec.a: Invalid value: "object": a before b'
    ]


def test_a_field_path_may_name_a_map_key_in_brackets() -> None:
    rule = {"rule": "false", "message": "no", "fieldPath": ".limits['nvidia.com/gpu']"}
    schema = _ruled(rule, limits={"type": "object", "additionalProperties": {"type": "string"}})
    assert [e.path for e in validate(schema, {"limits": {}})] == ["limits[nvidia.com/gpu]"]


def test_a_rule_without_a_message_reports_itself() -> None:
    errors = validate(_ruled({"rule": "self.n > 1"}, n={"type": "integer"}), {"n": 0})
    assert _strs(errors) == [': Invalid value: "object": failed rule: self.n > 1']


def test_a_message_expression_writes_the_message() -> None:
    rule = {"rule": "self.n > 1", "message": "fallback", "messageExpression": "'n is ' + string(self.n)"}
    assert validate(_ruled(rule, n={"type": "integer"}), {"n": 0})[0].message == "n is 0"


def test_a_message_expression_that_fails_falls_back_to_the_message() -> None:
    rule = {"rule": "self.n > 1", "message": "fallback", "messageExpression": "self.missing"}
    assert validate(_ruled(rule, n={"type": "integer"}), {"n": 0})[0].message == "fallback"


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("FieldValueForbidden", "n: Forbidden: nope"),
        ("FieldValueRequired", "n: Required value: nope"),
        ("FieldValueDuplicate", 'n: Duplicate value: "object"'),
        ("FieldValueInvalid", 'n: Invalid value: "object": nope'),
    ],
)
def test_a_rule_reason_chooses_the_error_type(reason: str, text: str) -> None:
    rule = {"rule": "false", "message": "nope", "fieldPath": ".n", "reason": reason}
    assert _strs(validate(_ruled(rule, n={"type": "integer"}), {"n": 1})) == [text]


def test_rules_run_on_every_item_and_map_value() -> None:
    positive = {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0", "message": "positive"}]}
    schema = _obj(
        items={"type": "array", "items": positive},
        byName={"type": "object", "additionalProperties": positive},
    )
    errors = validate(schema, {"items": [1, 0, -1], "byName": {"a": 1, "b": 0}})
    assert [e.path for e in errors] == ["items[1]", "items[2]", "byName.b"]
    assert str(errors[0]) == 'items[1]: Invalid value: "integer": positive'


def test_a_number_field_is_a_double_in_cel() -> None:
    rule = {"rule": "self.w > 0.5 && self.w < 2", "message": "out of range"}
    assert validate(_ruled(rule, w={"type": "number"}), {"w": 1}) == []


def test_a_rule_that_fails_to_evaluate_is_reported_on_its_node() -> None:
    rule = {"rule": "self.role == 'worker'", "message": "must be the worker"}
    errors = validate(_obj(spec=_ruled(rule, role={"type": "string"})), {"spec": {}})
    assert _strs(errors) == [
        'spec: Invalid value: "object": no such key: role evaluating rule: must be the worker'
    ]


def test_a_rule_that_does_not_compile_is_reported_on_its_node() -> None:
    errors = validate(_obj(spec=_ruled({"rule": "self.a ==", "message": "m"})), {"spec": {}})
    assert len(errors) == 1
    assert errors[0].path == "spec"
    assert errors[0].message.startswith("rule compile error: compilation failed")


def test_a_non_blocking_error_lets_the_rules_run() -> None:
    schema = _ruled({"rule": "self.n < 5", "message": "small"}, n={"type": "integer", "minimum": 10})
    assert _strs(validate(schema, {"n": 7})) == [
        "n: Invalid value: 7: n in body should be greater than or equal to 10",
        ': Invalid value: "object": small',
    ]


@pytest.mark.parametrize(
    ("property_schema", "value"),
    [
        ({"type": "integer"}, "7"),
        ({"type": "string", "enum": ["a"]}, "b"),
        ({"type": "string", "maxLength": 1}, "bb"),
        ({"type": "array", "maxItems": 0}, [1]),
        ({"type": "object", "required": ["a"]}, {}),
    ],
)
def test_a_blocking_error_leaves_the_rules_unchecked(property_schema: dict[str, Any], value: Any) -> None:
    schema = _ruled({"rule": "false", "message": "never"}, n=property_schema)
    errors = _strs(validate(schema, {"n": value}))
    assert len(errors) == 2
    assert errors[1] == NOT_CHECKED


def test_a_transition_rule_is_skipped_on_create_and_checked_on_update() -> None:
    rule = {"rule": "self >= oldSelf", "message": "may only grow"}
    schema = _obj(size={"type": "integer", "x-kubernetes-validations": [rule]})
    assert validate(schema, {"size": 1}) == []
    assert validate(schema, {"size": 2}, old={"size": 1}) == []
    assert _strs(validate(schema, {"size": 1}, old={"size": 2})) == [
        'size: Invalid value: "integer": may only grow'
    ]
    assert validate(schema, {"size": 1}, old={}) == [], "a field new in this update has no old value"


def test_a_transition_rule_follows_list_map_items_by_key() -> None:
    item = {
        **_obj(name={"type": "string"}, size={"type": "integer"}),
        "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size", "message": "may only grow"}],
    }
    schema = _obj(disks={**LIST_MAP, "x-kubernetes-list-map-keys": ["name"], "items": item})
    old = {"disks": [{"name": "a", "size": 5}, {"name": "b", "size": 5}]}
    new = {"disks": [{"name": "b", "size": 4}, {"name": "a", "size": 6}, {"name": "c", "size": 1}]}
    assert [e.path for e in validate(schema, new, old=old)] == ["disks[0]"]


def test_a_transition_rule_does_not_pair_items_of_other_lists() -> None:
    item = {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "grow"}]}
    schema = _obj(sizes={"type": "array", "items": item})
    assert validate(schema, {"sizes": [1]}, old={"sizes": [5]}) == []


def test_rule_errors_reports_the_rules_even_past_structural_errors() -> None:
    schema = _ruled({"rule": "self.n < 5", "message": "small"}, n={"type": "integer", "enum": [1]})
    assert _strs(rule_errors(schema, {"n": 7})) == [': Invalid value: "object": small']


# -- defaults -------------------------------------------------------------------------------------------


def test_defaults_fill_absent_fields_of_present_objects_at_any_depth() -> None:
    schema = _obj(
        spec=_obj(
            mode={"type": "string", "default": "auto"},
            nested=_obj(level={"type": "integer", "default": 3}),
            items={"type": "array", "items": _obj(weight={"type": "number", "default": 1.0})},
            byName={"type": "object", "additionalProperties": _obj(on={"type": "boolean", "default": True})},
        )
    )
    body = {"spec": {"items": [{}, {"weight": 2}], "byName": {"a": {}}}}
    assert default(schema, body) == {
        "spec": {
            "mode": "auto",
            "items": [{"weight": 1.0}, {"weight": 2}],
            "byName": {"a": {"on": True}},
        }
    }
    assert body == {"spec": {"items": [{}, {"weight": 2}], "byName": {"a": {}}}}, "the input is left alone"


def test_a_defaulted_object_gets_its_own_defaults() -> None:
    schema = _obj(policy={**_obj(retries={"type": "integer", "default": 3}), "default": {}})
    assert default(schema, {}) == {"policy": {"retries": 3}}


def test_a_null_takes_the_default_unless_the_field_is_nullable() -> None:
    schema = _obj(
        a={"type": "string", "default": "x"},
        b={"type": "string", "default": "y", "nullable": True},
        c={"type": "array", "items": {"type": "string", "default": "z"}},
    )
    assert default(schema, {"a": None, "b": None, "c": [None, "q"]}) == {"a": "x", "b": None, "c": ["z", "q"]}


def test_a_value_given_is_kept_over_the_default() -> None:
    assert default(_obj(a={"type": "integer", "default": 1}), {"a": 0}) == {"a": 0}


# -- pruning ---------------------------------------------------------------------------------------------


def test_pruning_drops_undeclared_fields_at_any_depth_and_names_them() -> None:
    schema = _obj(
        spec=_obj(
            known={"type": "string"},
            items={"type": "array", "items": _obj(a={"type": "integer"})},
            byName={"type": "object", "additionalProperties": _obj(a={"type": "integer"})},
        )
    )
    body: dict[str, Any] = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n", "labels": {"a": "b"}, "bogus": 1},
        "spec": {"known": "k", "extra": 1, "items": [{"a": 1, "b": 2}], "byName": {"m": {"a": 1, "z": 0}}},
        "status": {},
    }
    pruned, dropped = prune(schema, body)
    assert pruned == {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n", "labels": {"a": "b"}},
        "spec": {"known": "k", "items": [{"a": 1}], "byName": {"m": {"a": 1}}},
    }
    assert dropped == ["metadata.bogus", "spec.extra", "spec.items[0].b", "spec.byName.m.z", "status"]
    assert body["spec"]["extra"] == 1, "the input is left alone"


def test_preserve_unknown_fields_keeps_what_the_schema_does_not_declare() -> None:
    schema = _obj(
        template={**_obj(spec=_obj(name={"type": "string"})), "x-kubernetes-preserve-unknown-fields": True}
    )
    body = {"template": {"volumes": [{"x": 1}], "spec": {"name": "n", "gone": 1}}}
    assert prune(schema, body) == (
        {"template": {"volumes": [{"x": 1}], "spec": {"name": "n"}}},
        ["template.spec.gone"],
    )


def test_an_embedded_resource_keeps_its_type_and_object_meta() -> None:
    embedded = {**_obj(spec=_obj()), "x-kubernetes-embedded-resource": True}
    body = {
        "inner": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {}, "y": 2}
    }
    assert prune(_obj(inner=embedded), body) == (
        {"inner": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
        ["inner.metadata.x", "inner.y"],
    )


def test_pruning_drops_nulls_that_no_default_replaces_without_reporting_them() -> None:
    schema = _obj(
        a={"type": "string"}, b={"type": "string", "default": "d"}, c={"type": "string", "nullable": True}
    )
    assert prune(schema, {"a": None, "b": None, "c": None}) == ({"b": None, "c": None}, [])


def test_a_spec_set_to_null_is_a_missing_spec(cel: CelEvaluator) -> None:
    body = objects.aijob()
    body["spec"] = None
    assert _strs(_admit(body, cel)[1]) == ["spec: Required value", NOT_CHECKED]


# -- metadata ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"name": "llama-7b.v2"}, []),
        ({"generateName": "llama-"}, []),
        ({}, ["metadata.name: Required value: name or generateName is required", NOT_CHECKED]),
        (
            {"name": "Llama_7B"},
            [
                'metadata.name: Invalid value: "Llama_7B": a lowercase RFC 1123 subdomain must consist '
                "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ],
        ),
        (
            {"name": "a" * 254},
            [f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters'],
        ),
    ],
)
def test_the_name_must_be_a_dns_subdomain(
    metadata: dict[str, Any], expected: list[str], cel: CelEvaluator
) -> None:
    body = objects.tenantquota()
    body["metadata"] = metadata
    assert _strs(_admit(body, cel)[1]) == expected


def test_the_crd_version_schema_may_be_given_whole(cel: CelEvaluator) -> None:
    body = objects.tenantquota()
    body["spec"]["weight"] = 0
    wrapped = {"openAPIV3Schema": SCHEMAS["TenantQuota"]}
    assert [e.path for e in validate_custom_resource(wrapped, body, cel=cel)[1]] == ["spec.weight"]


def test_the_old_object_reaches_the_transition_rules(cel: CelEvaluator) -> None:
    schema = copy.deepcopy(SCHEMAS["TenantQuota"])
    schema["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.cohort == oldSelf.cohort", "message": "cohort is immutable", "fieldPath": ".cohort"}
    ]
    old = objects.tenantquota()
    new = copy.deepcopy(old)
    new["spec"]["cohort"] = "elsewhere"
    assert validate_custom_resource(schema, new, cel=cel)[1] == []
    errors = validate_custom_resource(schema, new, old=old, cel=cel)[1]
    assert _strs(errors) == ['spec.cohort: Invalid value: "object": cohort is immutable']


def test_rules_of_a_node_left_as_it_was_are_ratcheted_as_the_api_server_does() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {"size": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.size > 0", "message": "size must be positive"}],
            },
            "status": {"type": "object", "properties": {"note": {"type": "string"}}},
        },
    }
    stored = {"metadata": {"name": "x"}, "spec": {"size": -1}}  # valid before the rule was added
    status_write = {**stored, "status": {"note": "seen"}}
    assert validate_custom_resource(schema, status_write, old=stored)[1] == []
    assert [e.path for e in validate_custom_resource(schema, status_write)[1]] == ["spec"]
    spec_write = {**stored, "spec": {"size": -2}}
    assert [e.message for e in validate_custom_resource(schema, spec_write, old=stored)[1]] == [
        "size must be positive"
    ]
