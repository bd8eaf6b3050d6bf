"""The live answer to "why does this pod wait?", from the leading scheduler's own state.

`aisched explain` reads an AIJob's answer from its status (`status.pendingReason`); a pod that no
AIJob controls has no such status, so the operator answers for it on its HTTP port
(`/api/explain/pods/NAMESPACE/NAME`, `aisched explain --scheduler URL`): the same sections, built
by the same code (`controllers.aijob.status.pending_reason`) from the gang the pod is filed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aisched.api.objects import PodView, pod_key
from aisched.controllers.aijob.status import pending_reason

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["LiveExplain"]

#: Longer than any namespace or pod name the API server accepts: looked up as nothing.
_NAME_LIMIT: Final = 253
_NOT_TRIED: Final = "no scheduling attempt has turned it away yet"


class LiveExplain:
    """Answers for pods from the term's runtime (None while this replica does not lead)."""

    def __init__(self, runtime: Callable[[], SchedulerRuntime | None]) -> None:
        self._runtime = runtime

    def __call__(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The explain sections for pod `namespace/name`, or None when it is not known here."""
        runtime = self._runtime()
        if runtime is None or len(namespace) > _NAME_LIMIT or len(name) > _NAME_LIMIT:
            return None
        pod = runtime.pods.index.get((namespace, name))
        if pod is None:
            return None
        view = PodView(pod)
        node = view.node_name
        gang = runtime.gangs.gang_of(pod_key(namespace, name))
        answer: dict[str, Any] = {
            "object": {"kind": "Pod", "namespace": namespace, "name": name, "phase": view.phase or "Pending"},
            "gang": gang,
        }
        place = runtime.queue_status(gang) if gang is not None and not node else None
        if place is None:
            answer.update(
                stage="Running" if node else "Scheduling",
                summary=f"bound to {node}" if node else "not in the scheduler's queue now",
                quota={},
                placement={"placed": True, "nodes": [node]} if node else {"note": "not queued"},
                queue={"note": "not in the scheduler's queue"},
                preemption={"wouldPreempt": False},
            )
            return answer
        reason = pending_reason(place, summary=place.verdict or "waiting for its first attempt")
        sections = reason.model_dump(by_alias=True, exclude_none=True, mode="json")
        for section in ("quota", "placement", "queue", "preemption"):
            answer[section] = sections.get(section) or {"note": _NOT_TRIED}
        answer.update(stage=sections["stage"], summary=sections.get("summary", ""))
        return answer
