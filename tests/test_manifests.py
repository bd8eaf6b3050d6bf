"""The deployment manifests in manifests/base/: well-formed, consistent with each other, and granting
exactly the API access declared in `aisched.kube.rbac`."""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import pytest
import yaml

from aisched.api.meta import GROUP
from aisched.kube.rbac import (
    AGENT_LEASE_NAMESPACE,
    AGENT_NAMESPACED_PERMISSIONS,
    AGENT_PERMISSIONS,
    AISCHED_NAMESPACE,
    SCHEDULER_NAMESPACED_PERMISSIONS,
    SCHEDULER_PERMISSIONS,
    Permission,
    rules,
)

ROOT = pathlib.Path(__file__).parents[1]
MANIFESTS = ROOT / "manifests" / "base"
CRDS = ROOT / "crds"
NAMESPACE = "aisched-system"
AGENT_LEASES = "aisched-agents"
#: Every permission table, cluster-wide and namespaced.
ALL_TABLES = (
    SCHEDULER_PERMISSIONS,
    SCHEDULER_NAMESPACED_PERMISSIONS,
    AGENT_PERMISSIONS,
    AGENT_NAMESPACED_PERMISSIONS,
)

#: apiVersion -> kind -> namespaced?
KNOWN_KINDS: dict[str, dict[str, bool]] = {
    "v1": {"Namespace": False, "ServiceAccount": True, "Service": True},
    "rbac.authorization.k8s.io/v1": {
        "ClusterRole": False,
        "ClusterRoleBinding": False,
        "Role": True,
        "RoleBinding": True,
    },
    "apps/v1": {"Deployment": True, "DaemonSet": True},
    "admissionregistration.k8s.io/v1": {
        "ValidatingAdmissionPolicy": False,
        "ValidatingAdmissionPolicyBinding": False,
    },
}

Doc = dict[str, Any]


def manifest_files() -> list[pathlib.Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def load_documents(path: pathlib.Path) -> tuple[Doc, ...]:
    """Every non-empty YAML document of a (multi-document) file."""
    with path.open(encoding="utf-8") as fh:
        return tuple(doc for doc in yaml.safe_load_all(fh) if doc is not None)


def all_documents() -> list[Doc]:
    return [doc for path in manifest_files() for doc in load_documents(path)]


def find(kind: str, name: str) -> Doc:
    matches = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def only_container(workload: Doc) -> Doc:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Doc = containers[0]
    return container


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def all_rules() -> list[Doc]:
    """The rules of every ClusterRole and Role."""
    return [
        rule for doc in all_documents() if doc["kind"] in {"ClusterRole", "Role"} for rule in doc["rules"]
    ]


def pod_specs() -> list[tuple[str, Doc]]:
    """(name, pod template spec) of every Deployment and DaemonSet."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in all_documents()
        if doc["kind"] in {"Deployment", "DaemonSet"}
    ]


# --- shape of the files ----------------------------------------------------------------------


def test_manifests_directory_holds_numbered_yaml_files_namespace_first() -> None:
    names = [p.name for p in manifest_files()]
    assert names, "manifests/ has no YAML files"
    assert all(n[:2].isdigit() and n[2] == "-" for n in names), names
    assert names[0] == "00-namespace.yaml"


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_manifest_file_parses_as_multi_document_yaml(path: pathlib.Path) -> None:
    docs = load_documents(path)
    assert docs, f"{path.name} has no documents"
    assert all(isinstance(doc, dict) for doc in docs)


def test_every_document_has_a_known_api_version_kind_and_a_name() -> None:
    for doc in all_documents():
        assert doc.get("apiVersion") in KNOWN_KINDS, doc.get("apiVersion")
        assert doc.get("kind") in KNOWN_KINDS[doc["apiVersion"]], (doc["apiVersion"], doc.get("kind"))
        assert isinstance(doc.get("metadata", {}).get("name"), str), doc


def _expected_namespace(doc: Doc) -> str:
    """aisched-system, except the agent's Lease Role and its binding, in aisched-agents."""
    agent_leases = doc["kind"] in {"Role", "RoleBinding"} and doc["metadata"]["name"] == "aisched-agent"
    return AGENT_LEASES if agent_leases else NAMESPACE


def test_namespaced_kinds_live_in_their_namespace_and_cluster_kinds_carry_no_namespace() -> None:
    for doc in all_documents():
        namespaced = KNOWN_KINDS[doc["apiVersion"]][doc["kind"]]
        if namespaced:
            assert doc["metadata"].get("namespace") == _expected_namespace(doc), doc["metadata"]
        else:
            assert "namespace" not in doc["metadata"], doc["metadata"]


@pytest.mark.parametrize("namespace", [NAMESPACE, AGENT_LEASES])
def test_the_namespaces_the_objects_use_are_declared(namespace: str) -> None:
    assert find("Namespace", namespace)["metadata"]["labels"]["app.kubernetes.io/name"] == "aisched"


def test_the_agent_lease_namespace_is_declared_before_its_role() -> None:
    docs = [(d["kind"], d["metadata"]["name"]) for d in load_documents(MANIFESTS / "20-rbac.yaml")]
    assert docs.index(("Namespace", AGENT_LEASES)) < docs.index(("Role", "aisched-agent"))


def test_every_object_is_prefixed_aisched_and_labelled_with_its_component() -> None:
    for doc in all_documents():
        meta = doc["metadata"]
        assert meta["name"].startswith("aisched"), meta["name"]
        assert meta["labels"]["app.kubernetes.io/name"] == "aisched", meta["name"]
        if doc["kind"] != "Namespace":
            assert meta["labels"]["app.kubernetes.io/component"] in {"scheduler", "agent"}, meta["name"]


def test_object_names_are_unique_per_kind_and_namespace() -> None:
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in all_documents()]
    assert len(keys) == len(set(keys)), keys


# --- RBAC ------------------------------------------------------------------------------------


def test_scheduler_cluster_role_rules_equal_the_scheduler_permission_table() -> None:
    assert find("ClusterRole", "aisched-scheduler")["rules"] == rules(SCHEDULER_PERMISSIONS)


def test_agent_cluster_role_rules_equal_the_agent_permission_table() -> None:
    assert find("ClusterRole", "aisched-agent")["rules"] == rules(AGENT_PERMISSIONS)


def test_scheduler_role_rules_equal_the_scheduler_namespaced_permission_table() -> None:
    role = find("Role", "aisched-scheduler")
    assert role["metadata"]["namespace"] == AISCHED_NAMESPACE
    assert role["rules"] == rules(SCHEDULER_NAMESPACED_PERMISSIONS)


def test_agent_role_rules_equal_the_agent_namespaced_permission_table() -> None:
    role = find("Role", "aisched-agent")
    assert role["metadata"]["namespace"] == AGENT_LEASE_NAMESPACE
    assert role["rules"] == rules(AGENT_NAMESPACED_PERMISSIONS)


def test_the_namespace_constants_are_the_manifests_namespaces() -> None:
    assert AISCHED_NAMESPACE == NAMESPACE
    assert AGENT_LEASE_NAMESPACE == AGENT_LEASES


@pytest.mark.parametrize(
    ("component", "namespace"), [("scheduler", AISCHED_NAMESPACE), ("agent", AGENT_LEASE_NAMESPACE)]
)
def test_each_components_role_and_binding_live_in_its_own_lease_namespace(
    component: str, namespace: str
) -> None:
    for kind in ("Role", "RoleBinding"):
        assert find(kind, f"aisched-{component}")["metadata"]["namespace"] == namespace


def test_no_agent_grant_reaches_the_schedulers_lease_namespace() -> None:
    """An agent runs on every node: were its Lease grants in aisched-system, any node could
    rewrite the scheduler's leader-election Lease."""
    assert len({AGENT_LEASE_NAMESPACE, AISCHED_NAMESPACE}) == 2
    for binding in all_documents():
        if binding["kind"] != "RoleBinding" or binding["metadata"]["namespace"] != AISCHED_NAMESPACE:
            continue
        subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
        assert (NAMESPACE, "aisched-agent") not in subjects, binding["metadata"]["name"]


def test_no_cluster_role_grants_leases() -> None:
    """Leases are used in aisched-system only; cluster-wide they would reach kube-system's leader
    leases and kube-node-lease's node heartbeats."""
    cluster_roles = [d for d in all_documents() if d["kind"] == "ClusterRole"]
    assert cluster_roles
    for role in cluster_roles:
        for rule in role["rules"]:
            assert "leases" not in rule["resources"], (role["metadata"]["name"], rule)
    for table in (SCHEDULER_PERMISSIONS, AGENT_PERMISSIONS):
        assert not any(p.resource == "leases" for p in table)


def test_no_rbac_rule_grants_a_wildcard_group_resource_or_verb() -> None:
    assert all_rules()
    for rule in all_rules():
        for key in ("apiGroups", "resources", "verbs"):
            assert rule[key], rule
            assert not any("*" in item for item in rule[key]), rule
        assert "nonResourceURLs" not in rule, rule


def test_every_cluster_role_binding_points_at_an_existing_role_and_service_account() -> None:
    docs = all_documents()
    roles = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "ServiceAccount"
    }
    bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == roles, "every ClusterRole is bound"
    for binding in bindings:
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        assert ref["kind"] == "ClusterRole"
        assert ref["name"] in roles
        assert binding["subjects"]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts, subject


def test_every_role_binding_points_at_an_existing_role_and_service_account() -> None:
    docs = all_documents()
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role"}
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "ServiceAccount"
    }
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == roles, (
        "every Role is bound in its own namespace"
    )
    for binding in bindings:
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        assert ref["kind"] == "Role"
        assert (binding["metadata"]["namespace"], ref["name"]) in roles
        assert binding["subjects"]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts, subject


@pytest.mark.parametrize("binding_kind", ["ClusterRoleBinding", "RoleBinding"])
def test_each_component_role_is_bound_to_its_own_service_account(binding_kind: str) -> None:
    for component in ("scheduler", "agent"):
        binding = find(binding_kind, f"aisched-{component}")
        assert binding["roleRef"]["name"] == f"aisched-{component}"
        assert [(s["namespace"], s["name"]) for s in binding["subjects"]] == [
            (NAMESPACE, f"aisched-{component}")
        ]


def test_aisched_group_resources_are_exactly_the_crd_plurals_and_their_status() -> None:
    crd_files = sorted(CRDS.glob("aisched.io_*.yaml"))
    assert crd_files, "no CRDs in crds/"
    plurals = set()
    for path in crd_files:
        (crd,) = load_documents(path)
        assert crd["spec"]["group"] == GROUP
        plurals.add(crd["spec"]["names"]["plural"])
    declared = {p.resource for table in ALL_TABLES for p in table if p.group == GROUP}
    assert declared == plurals | {f"{plural}/status" for plural in plurals}


def test_permission_tables_name_each_resource_once() -> None:
    for cluster, namespaced in (
        (SCHEDULER_PERMISSIONS, SCHEDULER_NAMESPACED_PERMISSIONS),
        (AGENT_PERMISSIONS, AGENT_NAMESPACED_PERMISSIONS),
    ):
        # Also across a component's two tables: a cluster-wide grant would make the Role's moot.
        keys = [(p.group, p.resource) for p in (*cluster, *namespaced)]
        assert len(keys) == len(set(keys)), keys


def test_scheduler_may_bind_pods_elect_a_leader_and_run_kopf_standalone() -> None:
    granted = {(p.group, p.resource, verb) for p in SCHEDULER_PERMISSIONS for verb in p.verbs}
    in_namespace = {(p.group, p.resource, verb) for p in SCHEDULER_NAMESPACED_PERMISSIONS for verb in p.verbs}
    assert ("", "pods/binding", "create") in granted
    assert ("coordination.k8s.io", "leases", "update") in in_namespace
    # Kopf's own needs with peering disabled (kopf.readthedocs.io, "Deployment" > "RBAC").
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "list") in granted
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "watch") in granted
    assert ("", "namespaces", "watch") in granted
    assert ("", "events", "create") in granted
    assert not any(p.group == "kopf.dev" for p in SCHEDULER_PERMISSIONS)


def test_rules_merge_resources_with_equal_verbs_per_group_in_a_stable_order() -> None:
    perms = (
        Permission("b.io", "things", frozenset({"watch", "get"})),
        Permission("", "pods", frozenset({"get"})),
        Permission("b.io", "others", frozenset({"get", "watch"})),
        Permission("", "pods", frozenset({"list"})),
        Permission("a.io", "things", frozenset({"create"})),
    )
    expected = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["a.io"], "resources": ["things"], "verbs": ["create"]},
        {"apiGroups": ["b.io"], "resources": ["others", "things"], "verbs": ["get", "watch"]},
    ]
    assert rules(perms) == expected
    assert rules(tuple(reversed(perms))) == expected


@pytest.mark.parametrize(
    ("group", "resource", "verbs"),
    [
        ("*", "pods", {"get"}),
        ("", "*", {"get"}),
        ("", "pods", {"*"}),
        ("", "pods", set()),
        ("", "pods", {"escalate-everything"}),
        ("", "", {"get"}),
    ],
)
def test_permission_refuses_wildcards_unknown_or_missing_verbs(
    group: str, resource: str, verbs: set[str]
) -> None:
    with pytest.raises(ValueError, match="permission"):
        Permission(group, resource, frozenset(verbs))


# --- workloads -------------------------------------------------------------------------------


def test_workload_selectors_match_their_pod_template_labels() -> None:
    for doc in all_documents():
        if doc["kind"] in {"Deployment", "DaemonSet"}:
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), doc["metadata"]["name"]


def test_every_pod_spec_disables_service_links() -> None:
    """The aisched-metrics Service would inject AISCHED_METRICS_* variables, which the process refuses
    at start-up as unknown AISCHED_ settings."""
    specs = pod_specs()
    assert {name for name, _ in specs} == {"aisched-scheduler", "aisched-agent"}
    for name, pod in specs:
        assert pod.get("enableServiceLinks") is False, name


def test_no_workload_asks_for_a_system_critical_priority_class() -> None:
    """system-*-critical is refused outside kube-system where a ResourceQuota restricts it (GKE)."""
    for name, pod in pod_specs():
        assert not str(pod.get("priorityClassName", "")).startswith("system-"), name


def test_deployment_and_daemonset_use_their_matching_service_accounts() -> None:
    scheduler = find("Deployment", "aisched-scheduler")
    agent = find("DaemonSet", "aisched-agent")
    assert scheduler["spec"]["template"]["spec"]["serviceAccountName"] == "aisched-scheduler"
    assert agent["spec"]["template"]["spec"]["serviceAccountName"] == "aisched-agent"
    find("ServiceAccount", "aisched-scheduler")
    find("ServiceAccount", "aisched-agent")


def test_scheduler_runs_two_replicas_spread_across_nodes() -> None:
    deployment = find("Deployment", "aisched-scheduler")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spread = [
        c
        for c in pod.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname" and c["labelSelector"]["matchLabels"] == labels
    ]
    anti = (
        pod.get("affinity", {})
        .get("podAntiAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    assert spread or anti, "the two replicas must be kept apart across nodes"


def test_scheduler_container_runs_aisched_run_with_env_probes_and_resources() -> None:
    container = only_container(find("Deployment", "aisched-scheduler"))
    assert container["command"] == ["aisched", "run"]
    assert container["image"] == "ghcr.io/aisched/aisched"  # tagged in base/kustomization.yaml
    env = env_of(container)
    assert env["AISCHED_LOGGING__FORMAT"] == "json"
    assert env["AISCHED_METRICS__PORT"] == "8080"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "aisched-scheduler"), ("DaemonSet", "aisched-agent")]
)
def test_workloads_run_non_root_read_only_without_capabilities(kind: str, name: str) -> None:
    workload = find(kind, name)
    container = only_container(workload)
    security = container["securityContext"]
    pod_security = workload["spec"]["template"]["spec"].get("securityContext", {})
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security.get("privileged", False) is False


def test_metrics_service_targets_the_scheduler_pods_metrics_port() -> None:
    service = find("Service", "aisched-metrics")
    deployment = find("Deployment", "aisched-scheduler")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "scheduler"
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert port["port"] == 8080
    container_ports = {p["name"]: p["containerPort"] for p in only_container(deployment)["ports"]}
    target = port["targetPort"]
    assert target in container_ports or target in container_ports.values()
    assert container_ports["metrics"] == 8080


def test_agent_daemonset_runs_only_on_gpu_nodes_and_tolerates_the_gpu_taint() -> None:
    pod = find("DaemonSet", "aisched-agent")["spec"]["template"]["spec"]
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    gpu_present = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
    # Node selector terms are ORed: every one of them must require the GPU label.
    assert required["nodeSelectorTerms"]
    for term in required["nodeSelectorTerms"]:
        assert gpu_present in term["matchExpressions"]
    assert "nodeSelector" not in pod or pod["nodeSelector"].get("nvidia.com/gpu.present") == "true"
    assert any(
        (t.get("key"), t.get("effect"), t.get("operator")) == ("nvidia.com/gpu", "NoSchedule", "Exists")
        for t in pod["tolerations"]
    )
    assert not any("key" not in t and t.get("operator") == "Exists" for t in pod["tolerations"]), (
        "a blanket toleration would also land the agent on tainted non-GPU nodes"
    )


def test_agent_container_runs_aisched_agent_with_node_name_nvml_env_and_read_only_sys() -> None:
    daemonset = find("DaemonSet", "aisched-agent")
    container = only_container(daemonset)
    assert container["command"] == ["aisched", "agent"]
    env = env_of(container)
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    # MIG instance listing needs the MIG monitor capability; CAP_SYS_ADMIN is never added by default.
    assert env["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
    assert "add" not in container["securityContext"]["capabilities"]
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    host_paths = {name: v["hostPath"]["path"] for name, v in volumes.items() if "hostPath" in v}
    (sys_mount,) = [m for m in container["volumeMounts"] if host_paths.get(m["name"]) == "/sys"]
    assert sys_mount["readOnly"] is True
    assert not any(m["name"] in host_paths and not m.get("readOnly") for m in container["volumeMounts"]), (
        "every host path the agent sees is read-only"
    )


# -- the image they run --------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def _dockerfile_lines(instruction: str) -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{instruction} ")]


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "aisched-scheduler"), ("DaemonSet", "aisched-agent")]
)
def test_workloads_run_the_image_as_the_user_it_was_built_for(kind: str, name: str) -> None:
    workload = find(kind, name)
    container = only_container(workload)
    assert container["image"] == "ghcr.io/aisched/aisched"
    pod_security = workload["spec"]["template"]["spec"].get("securityContext", {})
    user = container.get("securityContext", {}).get("runAsUser", pod_security.get("runAsUser"))
    assert _dockerfile_lines("USER") == [f"{user}:{user}"]
    assert any(f"--uid {user} " in run for run in _dockerfile_lines("RUN")), "a passwd entry for it"
    assert container["command"][0] == "aisched"
    assert any(f"{v['mountPath']}".rstrip("/") == "/tmp" for v in container.get("volumeMounts", ())), (
        "the image writes to /tmp only: a read-only root needs a volume there"
    )


def test_the_image_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    copied = [
        source.rstrip("/")
        for line in _dockerfile_lines("COPY")
        if not line.startswith("--from")
        for source in line.split()[:-1]
    ]
    assert copied, "the Dockerfile copies the project in"
    assert set(copied) <= allowed
