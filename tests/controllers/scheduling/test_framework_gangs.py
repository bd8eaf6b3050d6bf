"""Gangs from the job frameworks teams already run, end to end on the emulator: each example in
examples/frameworks/ is applied, the pods its framework's controller would make are created
(tests.support.frameworks), and the scheduler places each gang whole or not at all.

The demo cluster has 7 nodes of 8 GPUs and every example's gang is 3 pods of 8 GPUs: a pod
scheduled alone would bind at once, so a gang missing one member that binds nothing shows the
gang was read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import pytest
import yaml

from aisched.controllers.scheduling import SchedulerRuntime
from aisched.controllers.scheduling.reporting import pod_scheduled_condition
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.quota import GPU_MILLI, Tenant
from tests.controllers.scheduling.test_runtime import Running, is_bound, pod, started, wait_bound, wait_pods
from tests.support.frameworks import controller_output, install_crds, path_of
from tests.support.kubectl import Kubectl

EXAMPLES: Final = Path(__file__).parents[3] / "examples"
FRAMEWORK_EXAMPLES: Final = sorted((EXAMPLES / "frameworks").glob("*.yaml"))
RESEARCH: Final = "ml-research"


@pytest.fixture
async def running(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    """The demo cluster with the frameworks' CRDs and the examples' namespaces, and the scheduler
    running on it (started after the CRDs, so it lists them at once)."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        await prepare(client)
        async with started(SchedulerRuntime(client, clock=time.monotonic)) as runtime:
            yield Running(client, runtime)


async def prepare(kube: KubeClient) -> None:
    """The frameworks' CRDs and the examples' namespaces."""
    await install_crds(kube)
    for namespace in load(EXAMPLES / "00-namespaces.yaml"):
        await kube.post("/api/v1/namespaces", namespace)


@pytest.fixture
def kube(running: Running) -> KubeClient:
    return running.kube


async def post(kube: KubeClient, obj: JsonObject) -> JsonObject:
    return await kube.post(path_of(obj), obj)


async def apply_example(kube: KubeClient, example: Path) -> list[list[JsonObject]]:
    """Create the example's objects and what their controllers make before the pods; returns the
    pods to create, by gang (a JobSet's Jobs' pods make one gang, as do an example's own Pods)."""
    return await apply_example_objects(kube, load(example))


async def apply_example_objects(kube: KubeClient, docs: list[JsonObject]) -> list[list[JsonObject]]:
    """`apply_example` of these objects."""
    gangs: list[list[JsonObject]] = []
    loose: list[JsonObject] = []
    for doc in docs:
        if doc["kind"] == "Pod":
            loose.append(doc)
            continue
        others, pods = controller_output(await post(kube, doc))
        gangs.extend(pods)
        made: list[JsonObject] = []
        for other in others:
            _, more = controller_output(await post(kube, other))
            made.extend(p for gang in more for p in gang)
        if made:
            gangs.append(made)
    if loose:
        gangs.append(loose)
    return gangs


def load(path: Path) -> list[JsonObject]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def names(pods: list[JsonObject]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


def waiting(words: str) -> Callable[[JsonObject], bool]:
    """Whether a pod is PodScheduled=False, Unschedulable, with a message holding `words`."""

    def check(obj: JsonObject) -> bool:
        condition = pod_scheduled_condition(obj)
        return (
            condition is not None
            and condition.get("reason") == "Unschedulable"
            and words in str(condition.get("message"))
        )

    return check


async def create(kube: KubeClient, pods: list[JsonObject]) -> None:
    for obj in pods:
        await post(kube, obj)


async def unbound(kube: KubeClient, namespace: str, pods: list[str]) -> list[str]:
    """Of `pods`, those still without a node (read now)."""
    listed = (await kube.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]
    return sorted(p["metadata"]["name"] for p in listed if p["metadata"]["name"] in pods and not is_bound(p))


@pytest.mark.parametrize("example", FRAMEWORK_EXAMPLES, ids=lambda p: p.stem)
async def test_each_frameworks_pods_gang_schedule_all_or_nothing(kube: KubeClient, example: Path) -> None:
    gangs = await apply_example(kube, example)
    assert gangs
    assert all(len(g) == 3 for g in gangs), "each example's gangs are 3 pods"
    namespace = gangs[0][0]["metadata"]["namespace"]
    held, others = gangs[0], [p for g in gangs[1:] for p in g]
    *early, last = held
    await create(kube, [*early, *others])

    # The gang's first two members wait for the third (each told the count when it was first
    # turned away); a LeaderWorkerSet's other group goes on.
    await wait_pods(kube, names(early), waiting("of its 3 members"), namespace=namespace)
    await wait_bound(kube, names(others), namespace=namespace)
    assert await unbound(kube, namespace, names(early)) == names(early)

    await create(kube, [last])
    bound = await wait_bound(kube, names(held), namespace=namespace)
    assert len({p["spec"]["nodeName"] for p in bound.values()}) == 3, "8 GPUs each: three nodes"


async def test_pods_wait_for_their_podgroup_and_are_told_so(kube: KubeClient) -> None:
    podgroup, job = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
    (pods,) = controller_output(await post(kube, job))[1]
    await create(kube, pods)
    await wait_pods(
        kube,
        names(pods),
        waiting(f"waiting for PodGroup.scheduling.x-k8s.io {RESEARCH}/resnet-sweep"),
        namespace=RESEARCH,
    )
    assert await unbound(kube, RESEARCH, names(pods)) == names(pods)

    await post(kube, podgroup)
    await wait_bound(kube, names(pods), namespace=RESEARCH)


async def test_a_changed_min_member_files_the_gang_again(kube: KubeClient) -> None:
    podgroup, job = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
    podgroup["spec"]["minMember"] = 4
    stored = await post(kube, podgroup)
    (pods,) = controller_output(await post(kube, job))[1]
    await create(kube, pods)
    await wait_pods(kube, names(pods), waiting("of its 4 members"), namespace=RESEARCH)

    await kube.patch(path_of(stored, named=True), {"spec": {"minMember": 3}})
    await wait_bound(kube, names(pods), namespace=RESEARCH)


async def test_an_unreadable_podgroup_is_named_on_its_pods(kube: KubeClient) -> None:
    podgroup, job = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
    podgroup["spec"]["minMember"] = "three"
    await post(kube, podgroup)
    (pods,) = controller_output(await post(kube, job))[1]
    await create(kube, pods)
    await wait_pods(kube, names(pods), waiting("spec.minMember: must be an integer"), namespace=RESEARCH)
    assert await unbound(kube, RESEARCH, names(pods)) == names(pods)


async def test_a_basic_pod_group_places_its_pods_one_by_one(kube: KubeClient) -> None:
    docs = load(EXAMPLES / "frameworks" / "k8s-podgroup.yaml")
    podgroup, first = docs[0], docs[1]
    podgroup["spec"]["schedulingPolicy"] = {"basic": {}}
    await post(kube, podgroup)
    await post(kube, first)
    await wait_bound(kube, [first["metadata"]["name"]], namespace=RESEARCH)


async def test_a_pod_cannot_join_another_namespaces_podgroup(kube: KubeClient) -> None:
    podgroup, _ = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
    podgroup["spec"]["minMember"] = 1
    await post(kube, podgroup)  # in ml-research
    intruder = pod("intruder", gpus=8, labels={"scheduling.x-k8s.io/pod-group": "resnet-sweep"})
    await post(kube, intruder)  # in default
    await wait_pods(
        kube, ["intruder"], waiting("waiting for PodGroup.scheduling.x-k8s.io default/resnet-sweep")
    )


async def test_aischeds_own_gang_label_comes_before_a_frameworks(kube: KubeClient) -> None:
    labels = {"scheduling.x-k8s.io/pod-group": "nowhere"}  # a PodGroup that does not exist
    pods = [pod(f"own-{i}", gpus=8, gang="own", min_member=2, labels=labels) for i in range(2)]
    await create(kube, pods)
    await wait_bound(kube, names(pods))


async def test_a_framework_gang_is_held_to_its_namespaces_quota(running: Running) -> None:
    kube = running.kube
    running.runtime.set_tenants(
        [Tenant("research", namespaces=frozenset({RESEARCH}), maximum={GPU_MILLI: 16_000})]
    )
    gangs = await apply_example(kube, EXAMPLES / "frameworks" / "indexed-job.yaml")
    (pods,) = gangs
    await create(kube, pods)
    await wait_pods(kube, names(pods), waiting("quota"), namespace=RESEARCH)
    assert await unbound(kube, RESEARCH, names(pods)) == names(pods), "2 of 3 would fit the quota: none bind"


async def test_a_framework_turned_off_in_the_settings_leaves_its_pods_one_by_one(
    emulator_cluster: Emulator,
) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await install_crds(kube)
        runtime = SchedulerRuntime(kube, clock=time.monotonic, gang_frameworks=frozenset({"jobset"}))
        assert [i.path for i in runtime.framework_informers] == ["/apis/jobset.x-k8s.io/v1alpha2/jobsets"]
        async with started(runtime):
            loner = pod("loner", gpus=8, labels={"scheduling.x-k8s.io/pod-group": "resnet-sweep"})
            await post(kube, loner)  # its PodGroup does not exist, and is not looked for
            await wait_bound(kube, ["loner"])


async def test_kubectl_applies_every_framework_example_and_the_podgroups_pods_run_together(
    running: Running, emulator_cluster: Emulator, tmp_path: Path
) -> None:
    kubectl = Kubectl(emulator_cluster.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
    applied = await kubectl.ok("apply", "-f", str(EXAMPLES / "frameworks"))
    assert "podgroup.scheduling.k8s.io/dpo-finetune created" in applied
    assert "raycluster.ray.io/rl-rollouts created" in applied
    await wait_bound(running.kube, ["dpo-finetune-0", "dpo-finetune-1", "dpo-finetune-2"], namespace=RESEARCH)
    shown = await kubectl.ok(
        "get", "pods", "-n", RESEARCH, "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName"
    )
    nodes = {line.split()[1] for line in shown.splitlines()[1:] if line.startswith("dpo-finetune-")}
    assert len(nodes) == 3


async def end(kube: KubeClient, obj: JsonObject, phase: str) -> None:
    """`obj`'s containers exit: it ends `phase`, as its kubelet would write it."""
    await kube.patch(path_of(obj, named=True) + "/status", {"status": {"phase": phase}})


async def test_a_replacement_pod_joins_what_is_left_of_its_indexed_jobs_gang(kube: KubeClient) -> None:
    (pods,) = await apply_example(kube, EXAMPLES / "frameworks" / "indexed-job.yaml")
    await create(kube, pods)
    await wait_bound(kube, names(pods), namespace=RESEARCH)
    first, second, third = sorted(pods, key=lambda p: p["metadata"]["name"])
    await end(kube, first, "Succeeded")
    await end(kube, second, "Succeeded")
    await end(kube, third, "Failed")
    # The Job controller makes index 2 again: two of its three have finished, so it goes alone.
    again = {**third, "metadata": {**third["metadata"], "name": third["metadata"]["name"] + "-retry"}}
    await post(kube, again)
    await wait_bound(kube, [again["metadata"]["name"]], namespace=RESEARCH)


async def test_a_jobset_started_in_order_is_one_gang_per_replicated_job(kube: KubeClient) -> None:
    (jobset,) = load(EXAMPLES / "frameworks" / "jobset.yaml")
    jobset["spec"]["startupPolicy"] = {"startupPolicyOrder": "InOrder"}
    jobset["spec"]["replicatedJobs"][1]["replicas"] = 3
    gangs = await apply_example_objects(kube, [jobset])
    (pods,) = gangs
    driver = [p for p in pods if "-driver-" in p["metadata"]["name"]]
    workers = [p for p in pods if "-workers-" in p["metadata"]["name"]]
    await create(kube, [*driver, *workers[:2]])
    await wait_bound(kube, names(driver), namespace=RESEARCH)  # the workers' Jobs come after it runs
    await wait_pods(kube, names(workers[:2]), waiting("of its 3 members"), namespace=RESEARCH)
    await create(kube, workers[2:])
    await wait_bound(kube, names(workers), namespace=RESEARCH)


async def test_a_leaderworkerset_whose_workers_wait_for_a_ready_leader_is_no_gang(kube: KubeClient) -> None:
    (lws,) = load(EXAMPLES / "frameworks" / "leaderworkerset.yaml")
    lws["spec"]["startupPolicy"] = "LeaderReady"
    gangs = await apply_example_objects(kube, [lws])
    leader = gangs[0][0]
    await create(kube, [leader])
    await wait_bound(kube, [leader["metadata"]["name"]], namespace="ml-inference")


async def test_pods_waiting_for_their_podgroup_share_one_event(kube: KubeClient) -> None:
    _, job = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
    job["spec"]["parallelism"] = job["spec"]["completions"] = 6
    (pods,) = controller_output(await post(kube, job))[1]
    await create(kube, pods)
    await wait_pods(kube, names(pods), waiting("waiting for PodGroup"), namespace=RESEARCH)
    events = (await kube.get(f"/api/v1/namespaces/{RESEARCH}/events"))["items"]
    failed = [e for e in events if e.get("reason") == "FailedScheduling"]
    assert len(failed) == 1, [e["message"] for e in failed]
    # Its count follows at the Event's next write (Events are written at a bounded pace).
    assert (
        " pods of gang PodGroup.scheduling.x-k8s.io:resnet-sweep: pod cannot be scheduled yet"
        in failed[0]["message"]
    )


async def test_a_scheduler_started_after_the_podgroup_never_says_it_waits_for_it(
    emulator_cluster: Emulator,
) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await prepare(kube)
        podgroup, job = load(EXAMPLES / "frameworks" / "coscheduling-podgroup.yaml")
        await post(kube, podgroup)
        (pods,) = controller_output(await post(kube, job))[1]
        await create(kube, pods)
        async with started(SchedulerRuntime(kube, clock=time.monotonic)):
            await wait_bound(kube, names(pods), namespace=RESEARCH)
        events = (await kube.get(f"/api/v1/namespaces/{RESEARCH}/events"))["items"]
        assert [e["message"] for e in events if "waiting for" in e["message"]] == []
