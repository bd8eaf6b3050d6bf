"""The `aisched` command: one entry point, a subcommand per job.

aisched crds [--output-dir crds/] [--check]   write (or check) the CRDs generated from the models
aisched validate -f FILE_OR_DIR ...          validate manifests offline with the same models
aisched run [--kubeconfig PATH | --emulator]  the scheduler and the AIJob controller
aisched demo --cluster FILE --examples DIR     the scheduler on the emulator, with example jobs
aisched view-screenshot --output PNG           the demo's cluster view, once its jobs are placed, as a PNG
aisched fault KIND NODE [--gpu I --xid N]      inject a node or GPU fault into the emulator's cluster
aisched simulate [--policy P] [--seeds 42..51]  replay the Alibaba GPU trace through the core (FGD experiment)
aisched explain NAMESPACE/NAME [-o json]        why an AIJob or a pod waits (also `kubectl aisched explain`)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

import yaml

from aisched import __version__
from aisched.agent.deviceplugin import DEFAULT_DIRECTORY as DEVICE_PLUGIN_DIRECTORY
from aisched.api.validation import validate_manifest
from aisched.crds import stale_crds, write_crds
from aisched.kube.rbac import AGENT_LEASE_NAMESPACE
from aisched.topology.machines import MACHINES

__all__ = ["kubectl_main", "main"]

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: The simulator's placement policies, in the FGD paper's order (`aisched.simulator.cluster.POLICIES`).
_POLICIES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd")
#: The module each optional extra of pyproject.toml installs, found without importing it.
_EXTRAS: Final = {"emulator": "celpy", "sim": "matplotlib", "deviceplugin": "grpc"}


def main(argv: Sequence[str] | None = None, *, prog: str = "aisched") -> int:
    """Run the `aisched` command; returns the process exit code."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    code: int = args.handler(args, out=sys.stdout, err=sys.stderr)
    return code


def kubectl_main() -> int:
    """`kubectl-aisched`: kubectl runs it for `kubectl aisched ...` (a plugin on PATH)."""
    return main(prog="kubectl aisched")


def _parser(prog: str = "aisched") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Kubernetes scheduler for AI jobs.")
    parser.add_argument("--version", action="version", version=f"aisched {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crds = commands.add_parser(
        "crds", help="write the CustomResourceDefinitions generated from the API models"
    )
    crds.add_argument(
        "--output-dir", type=Path, default=Path("crds"), help="directory to write (default: crds)"
    )
    crds.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the directory differs from the models"
    )
    crds.set_defaults(handler=_crds)

    validate = commands.add_parser(
        "validate", help="validate AIJob, TenantQuota, GPUNodeTopology and aisched pod manifests offline"
    )
    validate.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        type=Path,
        help="a manifest file, or a directory of them (searched recursively); may be repeated; - for stdin",
    )
    validate.add_argument("files_rest", nargs="*", type=Path, help=argparse.SUPPRESS)
    validate.set_defaults(handler=_validate)

    agent = commands.add_parser(
        "agent", help="the node agent: discover GPUs with NVML and publish GPUNodeTopology"
    )
    agent.add_argument(
        "--print", action="store_true", help="print the topology like `nvidia-smi topo -m` and exit"
    )
    agent.add_argument(
        "--fake", choices=sorted(MACHINES), help="discover on a built-in fake NVML of this machine type"
    )
    agent.add_argument(
        "--node", default=os.environ.get("NODE_NAME"), help="this node's name (default: $NODE_NAME)"
    )
    agent.add_argument("--namespace", default=AGENT_LEASE_NAMESPACE, help="namespace of the liveness Leases")
    agent.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG, else in-cluster)")
    agent.add_argument("--once", action="store_true", help="publish once and exit")
    agent.add_argument("--sysfs", type=Path, default=Path("/sys"), help=argparse.SUPPRESS)
    agent.add_argument(
        "--device-plugin",
        action="store_true",
        default=os.environ.get("AISCHED_DEVICE_PLUGIN", "").lower() in ("1", "true", "yes"),
        help="also serve the kubelet device plugin for nvidia.com/gpu, handing each container the GPUs"
        " aisched chose (default: $AISCHED_DEVICE_PLUGIN; needs the deviceplugin extra)",
    )
    agent.add_argument(
        "--device-plugin-dir",
        type=Path,
        default=Path(os.environ.get("AISCHED_DEVICE_PLUGIN_DIR") or DEVICE_PLUGIN_DIRECTORY),
        help="the kubelet's device-plugins directory, where kubelet.sock is"
        " (default: $AISCHED_DEVICE_PLUGIN_DIR, else %(default)s)",
    )
    agent.set_defaults(handler=_agent)

    emulator = commands.add_parser(
        "emulator", help="serve an embedded Kubernetes API with simulated GPU nodes"
    )
    emulator.add_argument("--cluster", type=Path, help="a SimulatedCluster file (examples/clusters/*.yaml)")
    emulator.add_argument("--port", type=int, default=6443, help="port on 127.0.0.1 (0: any free port)")
    emulator.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the emulator here")
    emulator.set_defaults(handler=_emulator)
    _add_fault_command(commands)

    _add_operator_commands(commands)
    _add_simulate_command(commands)

    bench = commands.add_parser("bench", help="benchmarks: JSON on stdout with --json, a table on stderr")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    core = benches.add_parser(
        "core", help="the scheduling core: single pods, gangs, memory, snapshot updates"
    )
    core.add_argument("--nodes", type=int, default=5000, help="synthetic cluster size (8 GPUs per node)")
    core.add_argument("--decisions", type=int, default=4000, help="single-pod decisions to time")
    core.add_argument("--gangs", type=int, default=250, help="8-pod gangs to time")
    core.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    core.set_defaults(handler=_bench_core)
    emulated = benches.add_parser(
        "emulator", help="Binding POSTs/s against the emulator with a watcher attached"
    )
    emulated.add_argument("--pods", type=int, default=3000, help="pods to create and bind")
    emulated.add_argument("--concurrency", type=int, default=16, help="Binding POSTs in flight")
    emulated.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    emulated.set_defaults(handler=_bench_emulator)
    _add_bench_e2e(benches)
    _add_bench_sim(benches)
    _add_bench_fairness(benches)
    _add_bench_queue(benches)
    _add_bench_faults(benches)
    return parser


def _add_bench_queue(benches: Any) -> None:
    """`aisched bench queue`."""
    queue = benches.add_parser(
        "queue",
        help="queueing strategies against the operator: a burst of whole-node jobs in waves;"
        " makespan, overtakes of a blocked head, half-bound gangs",
    )
    queue.add_argument("--nodes", type=int, default=32, help="simulated DGX H100 nodes (8 GPUs each)")
    queue.add_argument("--waves", type=int, default=9, help="waves of jobs that each fill the cluster")
    queue.add_argument("--run-seconds", type=float, default=6.0, help="how long each pod runs (default: 6)")
    queue.add_argument("--seed", type=int, default=1, help="the burst's random seed")
    queue.add_argument(
        "--strategies",
        default="StrictFIFO,BestEffortFIFO",
        help="comma list of AISCHED_QUEUEING__STRATEGY values, each run with reservation"
        " (default: StrictFIFO,BestEffortFIFO)",
    )
    queue.add_argument(
        "--parts", default="burst,trace", help="burst (end to end), trace (replayed), or both (default)"
    )
    queue.add_argument(
        "--traces",
        type=Path,
        default=Path("../shared/traces/alibaba-gpu-v2023"),
        help="folder of the Alibaba v2023 CSVs for the trace part",
    )
    queue.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    queue.set_defaults(handler=_bench_queue)


def _add_bench_faults(benches: Any) -> None:
    """`aisched bench faults`."""
    bench = benches.add_parser(
        "faults",
        help="node and GPU faults under running gangs, end to end: detection and recovery times,"
        " GPU-hours lost, GPUs given twice, per restart policy",
    )
    bench.add_argument("--nodes", type=int, default=32, help="simulated DGX H100 nodes, 8 to a rack")
    bench.add_argument("--jobs", type=int, default=8, help="AIJobs of 3 whole-node pods")
    bench.add_argument("--faults", type=int, default=6, help="faults injected, each under another job")
    bench.add_argument(
        "--detection", type=float, default=10.0, help="AISCHED_FAILURES__DETECTION_SECONDS (default 10)"
    )
    bench.add_argument(
        "--elastic-jobs",
        type=int,
        default=6,
        help="jobs of the elastic mix, run elastic, fixed at min and fixed at max (0: skip it)",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    bench.set_defaults(handler=_bench_faults)


def _add_bench_e2e(benches: Any) -> None:
    """`aisched bench e2e`."""
    e2e = benches.add_parser(
        "e2e", help="the scheduler runtime against the emulator: pods bound/s, creation-to-binding p50/p99"
    )
    e2e.add_argument("--nodes", type=int, default=1000, help="simulated DGX H100 nodes (8 GPUs each)")
    e2e.add_argument("--pods", type=int, default=5000, help="single-GPU pods")
    e2e.add_argument("--gangs", type=int, default=200, help="gangs of single-GPU pods")
    e2e.add_argument("--gang-size", type=int, default=8, help="members per gang")
    e2e.add_argument("--concurrency", type=int, default=32, help="pod creations in flight")
    e2e.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    e2e.set_defaults(handler=_bench_e2e)


def _add_bench_fairness(benches: Any) -> None:
    """`aisched bench fairness`."""
    fairness = benches.add_parser(
        "fairness", help="quotas, fair share and preemption against priority FIFO on a simulated workload"
    )
    fairness.add_argument("--seed", type=int, default=7, help="the workload's random seed")
    fairness.add_argument("--hours", type=float, default=168.0, help="virtual hours to simulate")
    fairness.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    fairness.set_defaults(handler=_bench_fairness)


def _add_bench_sim(benches: Any) -> None:
    """`aisched bench sim`."""
    simulated = benches.add_parser(
        "sim", help="the FGD experiment: every placement policy over seeds on a trace, against the paper"
    )
    _add_trace_options(simulated)
    simulated.add_argument(
        "--seeds", default="42..51", help="seeds: N, N..M or a comma list (default: 42..51)"
    )
    simulated.add_argument(
        "--policies", default=",".join(_POLICIES), help=f"comma list (default: {','.join(_POLICIES)})"
    )
    simulated.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    simulated.set_defaults(handler=_bench_sim)


def _add_trace_options(parser: argparse.ArgumentParser) -> None:
    """Where the trace and the paper's results are, which workload, how much load, how many processes."""
    parser.add_argument(
        "--traces",
        type=Path,
        default=Path("../shared/traces/alibaba-gpu-v2023"),
        help="folder of the Alibaba v2023 CSVs (default: ../shared/traces/alibaba-gpu-v2023,"
        " from the working directory or else the repository root)",
    )
    parser.add_argument(
        "--expected",
        type=Path,
        default=Path("../shared/traces/fgd-expected-results"),
        help="folder of the FGD authors' results, drawn beside ours"
        " (default: ../shared/traces/fgd-expected-results)",
    )
    parser.add_argument(
        "--workload",
        default="default",
        help="pod list(s), comma-separated, e.g. default,gpushare40; `all` for every list (default: default)",
    )
    parser.add_argument(
        "--tune", type=float, default=1.3, help="inflate arrivals to this × GPU capacity (default: 1.3)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="replays run at once, one process each (default: 1)"
    )


def _add_simulate_command(commands: Any) -> None:
    """`aisched simulate`."""
    simulate = commands.add_parser(
        "simulate", help="replay a cluster trace through the scheduling core with a virtual clock"
    )
    _add_trace_options(simulate)
    simulate.add_argument(
        "--policy",
        dest="policies",
        action="append",
        choices=_POLICIES,
        help="placement policy; may be repeated (default: all six)",
    )
    simulate.add_argument("--seeds", default="42", help="seeds: N, N..M or a comma list (default: 42)")
    simulate.add_argument(
        "--output-dir", type=Path, default=Path("sim-results"), help="where to write (default: ./sim-results)"
    )
    simulate.add_argument(
        "--trace-events",
        action="store_true",
        help="replay the trace's own creation and deletion times (pods depart; waits and job completion"
        " times are recorded) instead of the FGD arrival experiment",
    )
    simulate.add_argument(
        "--queueing",
        choices=("today", "StrictFIFO", "BestEffortFIFO"),
        default="today",
        help="with --trace-events: the gang queue's strategy (BestEffortFIFO and StrictFIFO reserve;"
        " today: BestEffortFIFO without reservations, as before queue discipline)",
    )
    simulate.add_argument(
        "--compress", type=float, default=1.0, help="with --trace-events: arrivals this many times faster"
    )
    simulate.add_argument(
        "--node-fraction",
        type=float,
        default=1.0,
        help="with --trace-events: replay on this fraction of the nodes, taken evenly from each GPU model",
    )
    simulate.set_defaults(handler=_simulate)


def _add_fault_command(commands: Any) -> None:
    fault = commands.add_parser(
        "fault",
        help="inject a hardware fault into the emulator's cluster (refused against any other API server)",
    )
    fault.add_argument(
        "kind",
        choices=("not-ready", "ready", "kubelet-restart", "delete-node", "xid", "gpu-healthy"),
        help="not-ready/ready: the node's Ready condition; kubelet-restart: not ready for --down"
        " seconds, pods untouched; delete-node; xid: GPU --gpu unhealthy with XID --xid;"
        " gpu-healthy: GPU --gpu healthy again",
    )
    fault.add_argument("node", help="the node's name")
    fault.add_argument(
        "--gpu", type=int, default=0, help="the GPU's index, for xid and gpu-healthy (default 0)"
    )
    fault.add_argument(
        "--xid", type=int, default=79, help="the XID, for xid (default 79: fallen off the bus)"
    )
    fault.add_argument("--down", type=float, default=2.0, help="seconds not ready, for kubelet-restart")
    fault.add_argument("--kubeconfig", help="the emulator's kubeconfig (default: $KUBECONFIG)")
    fault.set_defaults(handler=_fault)


def _add_operator_commands(commands: Any) -> None:
    """`aisched run`, `aisched demo`, `aisched view-screenshot` and `aisched explain`."""
    explain = commands.add_parser(
        "explain", help="why an AIJob or a pod waits: quota, placement, queue, preemption"
    )
    explain.add_argument("target", help="NAMESPACE/NAME, NAME (with -n), or aijob/... and pod/... to choose")
    explain.add_argument("-n", "--namespace", help="the namespace when TARGET names none (default: default)")
    explain.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="text (default) or json"
    )
    explain.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG, else in-cluster)")
    explain.add_argument(
        "--scheduler",
        default=os.environ.get("AISCHED_SCHEDULER_URL"),
        help="the leading operator's HTTP address (e.g. http://localhost:8080 through a port-forward;"
        " default $AISCHED_SCHEDULER_URL): a pod outside any AIJob is explained as the scheduler sees it",
    )
    explain.set_defaults(handler=_explain)

    run = commands.add_parser(
        "run", help="run the scheduler and the AIJob controller against an API server (or the emulator)"
    )
    run.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG, else in-cluster)")
    run.add_argument(
        "--emulator", action="store_true", help="start the embedded API emulator and schedule onto it"
    )
    run.add_argument(
        "--cluster",
        type=Path,
        help="with --emulator: a SimulatedCluster file (default: 32 DGX H100 nodes in 4 racks)",
    )
    run.add_argument(
        "--emulator-port", type=int, default=6443, help="with --emulator: its port on 127.0.0.1 (0: any)"
    )
    run.add_argument(
        "--write-kubeconfig",
        type=Path,
        default=Path("aisched-emulator.kubeconfig"),
        help="with --emulator: write a kubeconfig for kubectl here (default: ./aisched-emulator.kubeconfig)",
    )
    run.add_argument(
        "--no-leader-elect",
        action="store_true",
        help="schedule without taking the Lease (one replica only; also AISCHED_LEADER_ELECTION__ENABLED)",
    )
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo", help="the embedded emulator, the scheduler and example jobs, with a live table of the jobs"
    )
    demo.add_argument(
        "--cluster", type=Path, required=True, help="a SimulatedCluster file (examples/clusters/*.yaml)"
    )
    demo.add_argument("--examples", type=Path, required=True, help="the examples directory to apply")
    demo.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    demo.set_defaults(handler=_demo)

    shot = commands.add_parser(
        "view-screenshot",
        help="the demo's cluster and jobs on the emulator; a PNG of the cluster view once they are placed",
    )
    shot.add_argument(
        "--cluster",
        type=Path,
        default=Path("examples/clusters/dgx-h100-4racks.yaml"),
        help="a SimulatedCluster file (default: examples/clusters/dgx-h100-4racks.yaml)",
    )
    shot.add_argument(
        "--examples",
        type=Path,
        default=Path("examples"),
        help="the examples directory to apply (default: examples)",
    )
    shot.add_argument(
        "--output", type=Path, default=Path("docs/view.png"), help="the PNG to write (default: docs/view.png)"
    )
    shot.add_argument(
        "--width", type=int, default=1400, help="browser window width in pixels (default: 1400)"
    )
    shot.add_argument(
        "--height", type=int, default=1000, help="browser window height in pixels (default: 1000)"
    )
    shot.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    shot.set_defaults(handler=_view_screenshot)


def _explain(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from aisched.explain import explain_command  # noqa: PLC0415 - keep the other commands' start fast

    return explain_command(
        args.target,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        output=args.output,
        out=out,
        err=err,
        prog="kubectl aisched" if os.path.basename(sys.argv[0]) == "kubectl-aisched" else "aisched",
        scheduler=args.scheduler,
    )


def _lacks_extra(extra: str, *, command: str, err: TextIO) -> bool:
    """Whether the optional extra `extra` is not installed; if so, one line on `err` says how to."""
    if importlib.util.find_spec(_EXTRAS[extra]) is not None:
        return False
    print(f"{command}: needs the {extra} extra: pip install 'aisched[{extra}]'", file=err)
    return True


def _crds(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    directory: Path = args.output_dir
    if args.check:
        stale = stale_crds(directory)
        for name in stale:
            print(f"{directory / name}: differs from the models; run `aisched crds`", file=err)
        return 1 if stale else 0
    for path in write_crds(directory):
        print(path, file=out)
    return 0


def _agent(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from aisched.agent.cli import run  # noqa: PLC0415 - NVML and the API client load only for the agent

    if args.device_plugin and _lacks_extra("deviceplugin", command="aisched agent --device-plugin", err=err):
        return 1
    return run(args, out=out, err=err)


def _emulator(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched emulator", err=err):
        return 1
    import asyncio  # noqa: PLC0415 - only the long-running commands need an event loop
    import signal  # noqa: PLC0415

    from pydantic import ValidationError  # noqa: PLC0415

    from aisched.emulator.cluster import load_cluster  # noqa: PLC0415 - aiohttp loads only for the emulator
    from aisched.emulator.runner import serve  # noqa: PLC0415

    if args.cluster is not None:
        try:
            load_cluster(args.cluster)
        except (OSError, ValueError, ValidationError) as exc:
            summary = " ".join(str(exc).split())
            print(f"aisched emulator: cannot use cluster file {args.cluster}: {summary}", file=err)
            return 1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(cluster=args.cluster, port=args.port, kubeconfig=args.kubeconfig, stop=stop)

    asyncio.run(main())
    return 0


def _fault(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    import asyncio  # noqa: PLC0415

    from aisched.emulator import faults  # noqa: PLC0415
    from aisched.kube.client import ConfigError, KubeClient  # noqa: PLC0415

    async def inject() -> None:
        async with await KubeClient.auto(args.kubeconfig, timeout=10.0) as client:
            await faults.check_emulator(client)
            if args.kind in ("not-ready", "ready"):
                await faults.set_ready(client, args.node, args.kind == "ready")
            elif args.kind == "kubelet-restart":
                await faults.kubelet_restart(client, args.node, down=args.down)
            elif args.kind == "delete-node":
                await faults.delete_node(client, args.node)
            else:
                xid = args.xid if args.kind == "xid" else None
                await faults.gpu_health(client, args.node, args.gpu, xid=xid)

    try:
        asyncio.run(inject())
    except (faults.FaultError, ConfigError) as exc:
        print(f"aisched fault: {exc}", file=err)
        return 1
    print(
        f"{args.kind} {args.node}" + (f" gpu {args.gpu}" if args.kind in ("xid", "gpu-healthy") else ""),
        file=out,
    )
    return 0


def _run(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if args.emulator and _lacks_extra("emulator", command="aisched run --emulator", err=err):
        return 1
    from aisched.runner import run_command  # noqa: PLC0415 - Kopf and aiohttp load only for the operator

    return run_command(
        kubeconfig=args.kubeconfig,
        emulator=args.emulator,
        cluster=args.cluster,
        emulator_port=args.emulator_port,
        kubeconfig_out=args.write_kubeconfig,
        leader_elect=False if args.no_leader_elect else None,
        out=out,
        err=err,
    )


def _demo(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched demo", err=err):
        return 1
    from aisched.demo import run_demo  # noqa: PLC0415 - Kopf and aiohttp load only for the demo

    return run_demo(cluster=args.cluster, examples=args.examples, timeout=args.timeout, out=out, err=err)


def _view_screenshot(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched view-screenshot", err=err):
        return 1
    from aisched.view.screenshot import run_view_screenshot  # noqa: PLC0415 - Kopf and aiohttp load only here

    return run_view_screenshot(
        cluster=args.cluster,
        examples=args.examples,
        output=args.output,
        width=args.width,
        height=args.height,
        timeout=args.timeout,
        out=out,
        err=err,
    )


class _Benchmark(Protocol):
    def to_json(self) -> dict[str, Any]: ...
    def table(self) -> str: ...
    def failures(self) -> list[str]:
        """The correctness rows that failed (performance targets never appear here)."""
        ...


def _print_benchmark(result: _Benchmark, *, name: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    """JSON on stdout and the table on stderr with --json; else the table on stdout. Then each
    failed correctness row on stderr, and exit code 1 if there is one."""
    failed = result.failures()
    if as_json:
        print(json.dumps({**result.to_json(), "failed_checks": failed}, indent=2), file=out)
        print(result.table(), file=err)
    else:
        print(result.table(), file=out)
    for row in failed:
        print(f"aisched bench {name}: FAILED: {row}", file=err)
    return 1 if failed else 0


def _bench_core(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from aisched.bench.core import run_core_benchmark  # noqa: PLC0415 - heavy; only this command needs it

    result = run_core_benchmark(nodes=args.nodes, decisions=args.decisions, gangs=args.gangs)
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_fairness(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from aisched.simulator.fairness import run_fairness_benchmark  # noqa: PLC0415 - only this command needs it

    result = run_fairness_benchmark(seed=args.seed, hours=args.hours)
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_emulator(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched bench emulator", err=err):
        return 1
    from aisched.bench.emulator import run_emulator_benchmark  # noqa: PLC0415 - only this command needs it

    result = run_emulator_benchmark(pods=args.pods, concurrency=args.concurrency)
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_e2e(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched bench e2e", err=err):
        return 1
    from aisched.bench.e2e import run_e2e_benchmark  # noqa: PLC0415 - only this command needs it

    result = run_e2e_benchmark(
        nodes=args.nodes,
        pods=args.pods,
        gangs=args.gangs,
        gang_size=args.gang_size,
        concurrency=args.concurrency,
    )
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_queue(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched bench queue", err=err):
        return 1
    from aisched.bench.queue import parse_strategies, run_queue_benchmark  # noqa: PLC0415 - only this command needs it
    from aisched.simulator.trace import resolve  # noqa: PLC0415

    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    try:
        if not parts or parts - {"burst", "trace"}:
            raise ValueError(f"--parts: burst, trace or both, not {args.parts!r}")
        strategies = parse_strategies(args.strategies)
        result = run_queue_benchmark(
            nodes=args.nodes,
            waves=args.waves,
            run_seconds=args.run_seconds,
            seed=args.seed,
            strategies=strategies,
            parts=parts,
            traces=resolve(args.traces),
        )
    except (OSError, ValueError) as exc:
        print(f"aisched bench queue: {exc}", file=err)
        return 1
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_faults(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("emulator", command="aisched bench faults", err=err):
        return 1
    from aisched.bench.elastic import ElasticScenario  # noqa: PLC0415 - only this command needs it
    from aisched.bench.faults import run_faults_benchmark  # noqa: PLC0415

    try:
        if args.elastic_jobs < 0:
            raise ValueError(f"--elastic-jobs: 0 or more, not {args.elastic_jobs}")
        result = run_faults_benchmark(
            nodes=args.nodes,
            jobs=args.jobs,
            faults_count=args.faults,
            detection=args.detection,
            elastic=ElasticScenario(jobs=args.elastic_jobs) if args.elastic_jobs else None,
        )
    except ValueError as exc:
        print(f"aisched bench faults: {exc}", file=err)
        return 1
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _bench_sim(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("sim", command="aisched bench sim", err=err):
        return 1
    from aisched.simulator.bench import run_sim_benchmark  # noqa: PLC0415 - numpy-heavy; only this command needs it
    from aisched.simulator.experiment import parse_seeds  # noqa: PLC0415

    try:
        seeds = parse_seeds(args.seeds)
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        result = run_sim_benchmark(
            traces=args.traces,
            expected=args.expected,
            workload=args.workload,
            policies=policies,
            seeds=seeds,
            tune=args.tune,
            jobs=args.jobs,
            log=err,
        )
    except (OSError, ValueError) as exc:
        print(f"aisched bench sim: {exc}", file=err)
        return 1
    return _print_benchmark(result, name=args.bench, as_json=args.json, out=out, err=err)


def _simulate(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    if _lacks_extra("sim", command="aisched simulate", err=err):
        return 1
    from aisched.simulator.command import simulate  # noqa: PLC0415 - numpy and matplotlib load only for the simulator

    return simulate(args, out=out, err=err)


def _validate(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    checked = errors = 0
    for path in _manifest_files([*args.files, *args.files_rest]):
        for where, doc in _documents(path):
            if isinstance(doc, Exception):
                print(f"{where}: {doc}", file=out)
                errors += 1
                continue
            if doc is None:
                continue
            for item in _items(doc):
                checked_here, errors_here = _check(where, item, out)
                checked += checked_here
                errors += errors_here
    print(f"{checked} object(s) checked, {errors} error(s)", file=err)
    return 1 if errors else 0


def _items(doc: Any) -> list[Any]:
    """The objects of one document: a `kind: List` (as `kubectl get -o yaml` writes) holds several."""
    if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def _check(where: str, doc: Any, out: TextIO) -> tuple[int, int]:
    problems = validate_manifest(doc)
    if problems is None:
        return 0, 0
    for problem in problems:
        print(f"{where}: {_describe(doc)}: {problem}", file=out)
    return 1, len(problems)


def _manifest_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in _MANIFEST_SUFFIXES and p.is_file())
        else:
            yield path


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """Each YAML document of `path`, named `file:N` (N from 1), or the error that stopped the reading."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        yield str(path), ValueError(f"cannot read: {exc.strerror}")
        return
    except UnicodeDecodeError:
        yield str(path), ValueError("cannot read: not UTF-8 text")
        return
    try:
        for index, doc in enumerate(yaml.safe_load_all(text), start=1):
            yield f"{path}:{index}", doc
    except yaml.YAMLError as exc:
        yield str(path), ValueError(f"not valid YAML: {exc}".replace("\n", " "))
    except RecursionError:
        yield str(path), ValueError("not valid YAML: nested too deeply")


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "document"
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name = meta.get("name") or meta.get("generateName") or "(unnamed)"
    namespace = meta.get("namespace")
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "?"
    prefix = f"{namespace}/" if isinstance(namespace, str) else ""
    return f"{kind} {prefix}{name}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
