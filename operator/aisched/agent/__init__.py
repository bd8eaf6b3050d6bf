"""The node agent: NVML discovery, GPU health, GPUNodeTopology publishing.

Runs on every GPU node (`aisched agent`, the DaemonSet in manifests/). Talks to NVML through a
module object (the real `pynvml`, or `fake_nvml.FakeNvml` built from a machine template), and to
the API server only through `aisched.kube`. NVML calls block, so they run in threads.
"""
