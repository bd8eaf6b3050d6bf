"""The CRDs in crds/ are what the models generate, and a real API server would accept them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.api import AIJob, GPUNodeTopology, TenantQuota
from aisched.api.crd import KINDS, crd_for, structural
from aisched.api.meta import Resource
from aisched.crds import crd_filename, render_crd, write_crds

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND)
def test_committed_crds_equal_what_the_models_generate(kind: type[Resource]) -> None:
    committed = (ROOT / "crds" / crd_filename(kind)).read_text()
    assert committed == render_crd(kind), "crds/ is stale: run `make crds`"


def test_write_crds_writes_one_file_per_kind_and_removes_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "aisched.io_oldkinds.yaml").write_text("stale")
    (tmp_path / "unrelated.yaml").write_text("kept")
    written = write_crds(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in written), "unrelated.yaml"]
    )
    assert len(written) == 3


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _walk(node[key], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND)
def test_schemas_are_structural(kind: type[Resource]) -> None:
    """What apiextensions.k8s.io/v1 requires of a schema, node by node."""
    schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "$defs", "patternProperties", "uniqueItems", "const"} & node.keys(), path
        assert node.get("additionalProperties") is not False, path
        assert not {"additionalProperties", "properties"} <= node.keys(), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
            assert not {"anyOf", "oneOf"} & node.keys(), path
        if node.get("type") == "array":
            assert "items" in node, path
        if "default" in node:
            assert not path.startswith(".status"), f"{path}: defaults belong in spec"
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound, True) is True, f"{path}: {bound} must be a boolean in OpenAPI v3.0"
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "fieldPath", "reason", "messageExpression"}, path
            field_path = rule.get("fieldPath", "")
            if field_path:  # the API server refuses a fieldPath that names no field of the node
                target = node
                for part in field_path.split(".")[1:]:
                    target = target["properties"][part]


def test_crds_carry_names_scope_status_and_printer_columns() -> None:
    aijob = crd_for(AIJob)
    assert aijob["metadata"]["name"] == "aijobs.aisched.io"
    assert aijob["spec"]["scope"] == "Namespaced"
    assert aijob["spec"]["names"]["shortNames"] == ["aij"]
    version = aijob["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "GPUs",
        "Tenant",
        "Queue Position",
        "Est. Start",
        "Age",
    ]
    quota = crd_for(TenantQuota)
    assert quota["spec"]["scope"] == "Cluster"
    assert quota["spec"]["names"]["shortNames"] == ["tq"]
    assert {"Used GPUs", "Guaranteed GPUs"} <= {
        c["name"] for c in quota["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    topology = crd_for(GPUNodeTopology)
    assert topology["spec"]["scope"] == "Cluster"
    assert topology["spec"]["names"]["shortNames"] == ["gnt"]


def test_printer_columns_point_at_fields_of_the_schema() -> None:
    for kind in KINDS:
        version = crd_for(kind)["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        for column in version["additionalPrinterColumns"]:
            if column["jsonPath"].startswith(".metadata"):
                continue
            node = schema
            for part in column["jsonPath"].split(".")[1:]:
                node = node["properties"][part]
            assert node["type"] == column["type"] or (column["type"] == "number" and node["type"] == "number")


def test_unique_lists_are_list_maps_and_sets() -> None:
    spec = crd_for(AIJob)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["replicas"]["x-kubernetes-list-type"] == "map"
    assert spec["properties"]["replicas"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["properties"]["gpu"]["properties"]["models"]["x-kubernetes-list-type"] == "set"


def test_the_crd_files_parse_as_single_crd_documents() -> None:
    for kind in KINDS:
        docs = list(yaml.safe_load_all((ROOT / "crds" / crd_filename(kind)).read_text()))
        assert len(docs) == 1
        assert docs[0]["kind"] == "CustomResourceDefinition"


def test_structural_refuses_unions_it_cannot_express() -> None:
    with pytest.raises(ValueError, match="union"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})
    with pytest.raises(ValueError, match="no type"):
        structural({"description": "untyped"})


def test_structural_translates_exclusive_bounds_to_openapi_v3() -> None:
    assert structural({"type": "number", "exclusiveMinimum": 0}) == {
        "type": "number",
        "exclusiveMinimum": True,
        "minimum": 0,
    }
    assert structural({"type": "integer", "exclusiveMaximum": 10}) == {"type": "integer", "maximum": 9}


def _reached(node: dict[str, Any], names: set[str], path: str) -> list[tuple[str, dict[str, Any]]]:
    """The nodes under `node` that a rule mentioning the field `names` can reach."""
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        if name in names:
            found += _reached(sub, names, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _reached(node[key], names, f"{path}[]")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND)
def test_cel_rules_have_a_bounded_cost(kind: type[Resource]) -> None:
    """The API server refuses a CRD whose rules' estimated cost has no bound.

    Every list and map a rule can reach (through a field it names) must have a maximum size, and
    no rule may run a regex (its cost grows with a string's length, which map keys cannot bound).
    """
    schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert "matches(" not in rule["rule"], path
            names = set(re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", rule["rule"]))
            for sub_path, sub in _reached(node, names, path):
                if sub.get("type") == "array":
                    assert "maxItems" in sub, f"{sub_path} is unbounded under the rule at {path}"
                if isinstance(sub.get("additionalProperties"), dict):
                    assert "maxProperties" in sub, f"{sub_path} is unbounded under the rule at {path}"
