"""aisched: a Kubernetes-native scheduler for AI training and inference jobs.

Gangs placed whole, GPU-topology-aware placement, fair multi-tenant quotas, explainable
decisions. See DESIGN.md for the architecture; each sub-package's docstring states its contract.
"""

from __future__ import annotations

__version__ = "0.1.0"
