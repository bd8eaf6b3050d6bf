"""The trace as the scheduling core sees it: nodes as `NodeInfo`, pods as `PodInfo`, a policy as a `Profile`.

Nodes offer their CPU, memory and GPUs (1000 milli each, uniform wiring, the trace's model as the
GPU product label) and room for 1,001 pods, a limit the trace never reaches. A pod asks for its
CPU and memory; one sharing a GPU names its milli, one with k whole GPUs asks for k
`nvidia.com/gpu`; `gpu_spec` becomes the allowed GPU models. The profile filters as the paper
does (GPU model allowed, CPU and memory fit, GPU fit) and scores with exactly one policy plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aisched.api import keys
from aisched.framework.profile import Profile, ScorePluginRef
from aisched.framework.types import PodInfo
from aisched.plugins import policies
from aisched.plugins.policies import TypicalPod
from aisched.simulator.trace import TraceNode, TracePod
from aisched.topology import resources
from aisched.topology.node import NodeInfo

__all__ = ["FILTERS", "NAMESPACE", "POLICIES", "node_info", "pod_info", "policy_profile"]

#: Policy names on the command line → their score plugins, in the paper's order.
POLICIES: Final = {
    "random": policies.RANDOM,
    "dotprod": policies.DOT_PRODUCT,
    "clustering": policies.CLUSTERING,
    "packing": policies.PACKING,
    "bestfit": policies.BEST_FIT,
    "fgd": policies.FGD,
}
#: The paper's filters: GPU model allowed; CPU and memory (and whole GPUs) fit; GPU devices fit.
FILTERS: Final = ("GPUModel", "ResourceFit", "GPUHealth", "GPUSharing")
NAMESPACE: Final = "trace"
MAX_PODS_PER_NODE: Final = 1001
MIB: Final = 2**20


def node_info(node: TraceNode) -> NodeInfo:
    return NodeInfo(
        name=node.name,
        labels={keys.LABEL_GPU_PRODUCT: node.model} if node.model else {},
        allocatable={
            resources.CPU: node.cpu_milli,
            resources.MEMORY: node.memory_mib * MIB,
            resources.PODS: MAX_PODS_PER_NODE,
            resources.GPU: node.gpus,
        },
    )


def pod_info(
    pod: TracePod, *, created: float = 0.0, sequence: int = 0, runtime_limit: float | None = None
) -> PodInfo:
    requests = {resources.CPU: pod.cpu_milli, resources.MEMORY: pod.memory_mib * MIB, resources.PODS: 1}
    if pod.num_gpu > 0 and not pod.shares_gpu:
        requests[resources.GPU] = pod.num_gpu
    return PodInfo(
        namespace=NAMESPACE,
        name=pod.name,
        requests=requests,
        gpu_models=pod.gpu_spec,
        gpu_milli=pod.gpu_milli if pod.shares_gpu else 0,
        created=created,
        sequence=sequence,
        runtime_limit=runtime_limit,
    )


def policy_profile(policy: str, *, seed: int, typical: Sequence[TypicalPod]) -> Profile:
    """The profile that places with `policy` alone (a POLICIES key), ties broken by `seed`."""
    plugin = POLICIES.get(policy)
    if plugin is None:
        raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    args = {
        policies.RANDOM: {"seed": seed},
        policies.FGD: {"typicalPods": [t.to_json() for t in typical]},
    }
    return Profile(
        scheduler_name=f"sim-{policy}",
        queue_sort="PrioritySort",
        pre_filter=(),
        filter=FILTERS,
        post_filter=(),
        score=(ScorePluginRef(name=plugin),),
        plugin_args={plugin: args[plugin]} if plugin in args else {},
        tie_break_seed=seed,
    )
