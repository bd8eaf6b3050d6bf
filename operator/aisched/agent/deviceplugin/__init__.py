"""The kubelet device plugin: hands each container exactly the GPUs aisched chose for its pod.

For clusters without DRA (DESIGN.md §11). One gRPC server per extended resource on a unix socket
in the kubelet's device-plugins directory, registered with the kubelet and registered again when
the kubelet restarts. `devices` and `book` are pure (no I/O, no gRPC); `allocation` decides what a
container gets; `service` and `registration` speak gRPC; `runner` puts them beside the agent.

The only package of aisched that imports `grpc` (the `deviceplugin` extra).
"""

from pathlib import Path
from typing import Final

#: Where the kubelet looks for device plugins and serves its Registration (`kubelet.sock`).
DEFAULT_DIRECTORY: Final = Path("/var/lib/kubelet/device-plugins")
