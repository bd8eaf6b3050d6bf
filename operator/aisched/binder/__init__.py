"""The binding cycle: async Binding POSTs with bounded concurrency, rollback on failure.

The only part of scheduling that talks to the API server. `ledger` and `manifest` are pure (they
decide and describe); `Binder` does the I/O, paced by `TokenBucket`, with an injected clock and
sleep so tests never wait.
"""

from aisched.binder.binder import Binder, BindingClient
from aisched.binder.ledger import (
    BindErrorKind,
    BindOutcome,
    ErrorAnswer,
    GangLedger,
    Verdict,
    error_kind,
    judge_conflict,
    judge_error,
)
from aisched.binder.manifest import binding_body, binding_path, device_annotations
from aisched.binder.ratelimit import TokenBucket

__all__ = [
    "BindErrorKind",
    "BindOutcome",
    "Binder",
    "BindingClient",
    "ErrorAnswer",
    "GangLedger",
    "TokenBucket",
    "Verdict",
    "binding_body",
    "binding_path",
    "device_annotations",
    "error_kind",
    "judge_conflict",
    "judge_error",
]
