#!/usr/bin/env bash
# Runs the built image's entry points inside its own filesystem (`make image-test`, after
# `make image`): no Docker engine is needed, only buildah, util-linux and kubectl.
#
# 1. `aisched --version` and `aisched agent --help` as the image's user (uid 65532).
# 2. `aisched run --emulator` with the image's root filesystem mounted read-only (a tmpfs-like
#    host folder on /tmp, as manifests/base mounts an emptyDir there), the scheduler and the
#    embedded API server in one process; kubectl on the host applies the example PyTorch DDP AIJob
#    (a gang of 2 pods x 8 GPUs, one rack required) and waits until both pods are bound and the job
#    runs; `aisched agent --once` on a fake NVML, also read-only, publishes a node's
#    GPUNodeTopology; then SIGTERM, on which the scheduler must release its Lease and exit.
# Usage: tests/image/image-test.sh IMAGE
set -euo pipefail

image=${1:?usage: image-test.sh IMAGE}
here=$(cd "$(dirname "$0")/../.." && pwd)
port=${AISCHED_IMAGE_TEST_PORT:-18443}
timeout=${AISCHED_IMAGE_TEST_TIMEOUT:-120}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

work=$(mktemp -d)
container=$(buildah from --quiet "$image")
# The operator's pid, written by the operator's own shell before it execs (unshare passes no
# signal on, and bash may put a subshell between $! and it).
pidfile=$work/operator.pid
stop() { [[ -s $pidfile ]] && kill "-$1" "$(cat "$pidfile")" 2>/dev/null || true; }
running() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
cleanup() {
    if running; then stop KILL; fi
    wait 2>/dev/null || true
    buildah umount "$container" >/dev/null 2>&1 || true
    buildah rm "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf 'image-test: %s\n' "$*"; }

version=$(buildah run --isolation chroot "$container" -- aisched --version)
expected="aisched $(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml")"
[[ $version == "$expected" ]] || { say "aisched --version printed '$version', not '$expected'"; exit 1; }
say "aisched --version: $version"
user=$(buildah run --isolation chroot "$container" -- id -u)
[[ $user == 65532 ]] || { say "the image runs as uid $user, not 65532"; exit 1; }
buildah run --isolation chroot "$container" -- aisched agent --help >/dev/null
say "aisched agent --help: ok; runs as uid $user"

# Runs a command as the image's user in the image's root filesystem, mounted read-only, with only
# /tmp writable (the host folder $work, so the host reads what it writes), in a mount namespace of
# its own; the network is the host's.
root=$(buildah mount "$container")
chmod 1777 "$work"
read_only() {  # read_only PIDFILE COMMAND...: PIDFILE gets the command's pid
    unshare --mount --fork --kill-child sh -euc '
        root=$1 work=$2 pidfile=$3; shift 3
        echo $$ >"$pidfile"
        mount --bind "$root" "$root"
        mount -o remount,bind,ro "$root"
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount --bind "$work" "$root/tmp"
        exec chroot --userspec=65532:65532 "$root" /usr/bin/env -i \
            PATH=/opt/aisched/bin:/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 "$@"
    ' sh "$root" "$work" "$@"
}
read_only "$pidfile" aisched run --emulator --emulator-port "$port" --write-kubeconfig /tmp/kubeconfig \
    >"$work/operator.log" 2>&1 &

kubeconfig=$work/kubeconfig
for _ in $(seq "$timeout"); do
    [[ -s $kubeconfig ]] && kubectl --kubeconfig "$kubeconfig" get aijobs -A >/dev/null 2>&1 && break
    [[ ! -s $pidfile ]] || running || { say "aisched run exited:"; cat "$work/operator.log"; exit 1; }
    sleep 1
done
[[ -s $kubeconfig ]] || { say "no kubeconfig after ${timeout}s:"; cat "$work/operator.log"; exit 1; }
say "aisched run --emulator serves on 127.0.0.1:$port with a read-only root filesystem"

k() { kubectl --kubeconfig "$kubeconfig" "$@"; }
k apply -f "$here/examples/00-namespaces.yaml" -f "$here/examples/tenantquotas.yaml" >/dev/null
k apply -f "$here/examples/aijob-pytorch-ddp.yaml"
if ! k wait --for=jsonpath='{.status.phase}'=Running aijob/llama-pretrain-ddp -n ml-research \
        --timeout="${timeout}s"; then
    k get aijob,pods -n ml-research -o wide || true
    say "operator log:"; tail -50 "$work/operator.log"
    exit 1
fi
nodes=$(k get pods -n ml-research -l aisched.io/job=llama-pretrain-ddp \
    -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}')
bound=$(grep -c . <<<"$nodes" || true)
[[ $bound == 2 ]] || { say "expected 2 bound pods, found $bound: $nodes"; exit 1; }
say "gang bound on $(tr '\n' ' ' <<<"$nodes")and running"

# The node agent, from the same image and as read-only, on a fake NVML of another machine type
# than the emulator simulates there (HGX A100 on a DGX H100 node), so that it has something to
# write: one publication of the node's GPUNodeTopology and its Lease.
node=$(k get nodes -o jsonpath='{.items[-1].metadata.name}')
before=$(k get gnt "$node" -o jsonpath='{.metadata.resourceVersion}')
k apply -k "$here/manifests" >/dev/null  # the install bundle: the agents' Lease namespace among it
read_only "$work/agent.pid" aisched agent --fake hgx-a100 --node "$node" --kubeconfig /tmp/kubeconfig --once \
    >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 60); do kill -0 "$agent" 2>/dev/null || break; sleep 1; done
if kill -0 "$agent" 2>/dev/null; then
    kill -KILL "$(cat "$work/agent.pid")" 2>/dev/null || true
    say "aisched agent --once still runs after 60 s:"; tail -5 "$work/agent.log"; exit 1
fi
wait "$agent" || { say "aisched agent --once failed:"; cat "$work/agent.log"; exit 1; }
after=$(k get gnt "$node" -o jsonpath='{.metadata.resourceVersion}')
models=$(k get gnt "$node" -o jsonpath='{.status.gpus[*].model}')
holder=$(k get lease -n aisched-agents "aisched-agent-$node" -o jsonpath='{.spec.holderIdentity}')
if [[ $after == "$before" || $models != *A100* || $holder != "$node" ]]; then
    say "the agent did not publish $node (GPU models: $models; Lease holder: $holder):"
    cat "$work/agent.log"; exit 1
fi
say "aisched agent published GPUNodeTopology $node ($(wc -w <<<"$models") GPUs: ${models%% *}) and its Lease"
if grep -q "Read-only file system" "$work/operator.log"; then
    say "the operator tried to write outside /tmp:"; grep "Read-only file system" "$work/operator.log"; exit 1
fi

# The kubelet stops a pod with SIGTERM: the operator must let go of its Lease and exit.
stop TERM
for _ in $(seq 30); do running || break; sleep 1; done
if running; then say "aisched run still runs 30 s after SIGTERM"; exit 1; fi
grep -q '"leader_released"' "$work/operator.log" || { say "no leader_released on SIGTERM"; exit 1; }
say "SIGTERM: the Lease was released and aisched run exited"
say "passed"
