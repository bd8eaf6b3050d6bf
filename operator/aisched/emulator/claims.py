"""The ResourceClaim controller of kube-controller-manager, as far as pods and claims see it.

For each pod entry `spec.resourceClaims[].resourceClaimTemplateName`, it makes the pod's own
ResourceClaim from the template (named `<pod>-<entry>-<5 characters>`, owned by the pod so the
garbage collector deletes it with the pod, annotated `resource.kubernetes.io/pod-claim-name`) and
records it in the pod's `status.resourceClaimStatuses`. When a pod ends or is deleted, it is taken
out of the `status.reservedFor` of the claims it used; a claim reserved for nobody any more is
deallocated (its `status.allocation` dropped), so its devices are free again.

Work is done on the next loop turn after the change that calls for it, as a controller reacting to
a watch event would, never inside the store's write.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import string
from typing import Any, Final

from aisched.api.objects import PodView
from aisched.emulator.dra import GROUP
from aisched.emulator.errors import StatusError
from aisched.emulator.server import ApiServer
from aisched.emulator.store import Event

__all__ = ["POD_CLAIM_NAME", "ClaimController"]

POD_CLAIM_NAME: Final = "resource.kubernetes.io/pod-claim-name"
_ALPHABET: Final = string.ascii_lowercase + string.digits


class ClaimController:
    """Makes pods' claims from their templates and releases claims of pods that are done."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._pods = server.resource("", "v1", "pods")
        self._claims = server.resource(GROUP, "v1", "resourceclaims")
        self._templates = server.resource(GROUP, "v1", "resourceclaimtemplates")
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.server.on_change(self._changed)

    def _changed(self, event: Event) -> None:
        if event.resource != self._pods.key or self._loop is None:
            return
        pod = event.object
        entries = (pod.get("spec") or {}).get("resourceClaims") or []
        if not entries:
            return
        done = event.type == "DELETED" or PodView(pod).terminal
        self._loop.call_soon(self._release if done else self._make, copy.deepcopy(pod))

    # -- making claims from templates -------------------------------------------------------------

    def _make(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        current = self.server.store.find(self._pods, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid"):
            return
        statuses = list((current.get("status") or {}).get("resourceClaimStatuses") or [])
        made = {s.get("name") for s in statuses if isinstance(s, dict)}
        added = False
        for entry in (current.get("spec") or {}).get("resourceClaims") or []:
            if not isinstance(entry, dict):
                continue
            template_name, name = entry.get("resourceClaimTemplateName"), entry.get("name")
            if not template_name or name in made:
                continue
            claim_name = self._claim_from(current, str(name), str(template_name))
            if claim_name is None:
                continue  # no template (yet): the pod waits, as the real controller leaves it
            statuses.append({"name": name, "resourceClaimName": claim_name})
            added = True
        if added:
            updated = copy.deepcopy(current)
            updated.setdefault("status", {})["resourceClaimStatuses"] = statuses
            self.server.store.replace(self._pods, current, updated)

    def _claim_from(self, pod: dict[str, Any], entry: str, template_name: str) -> str | None:
        meta = pod["metadata"]
        namespace = meta["namespace"]
        template = self.server.store.find(self._templates, namespace, template_name)
        if template is None:
            return None
        spec = template.get("spec") or {}
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
        claim_meta = copy.deepcopy(spec.get("metadata") or {})
        claim_meta.update(
            {
                "name": f"{meta['name']}-{entry}-{suffix}"[:253],
                "namespace": namespace,
                "annotations": {**(claim_meta.get("annotations") or {}), POD_CLAIM_NAME: entry},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            }
        )
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ResourceClaim",
            "metadata": claim_meta,
            "spec": copy.deepcopy(spec.get("spec") or {}),
        }
        try:
            created = self.server.create(self._claims, namespace, body)
        except StatusError:
            return None  # a template whose claim the server refuses: the pod's claim is never made
        return str(created["metadata"]["name"])

    # -- releasing claims of pods that are done -------------------------------------------------------

    def _release(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid")
        named = {
            e.get("resourceClaimName") for e in pod["spec"].get("resourceClaims") or [] if isinstance(e, dict)
        }
        named |= {
            s.get("resourceClaimName")
            for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []
            if isinstance(s, dict)
        }
        for name in sorted(n for n in named if n):
            claim = self.server.store.find(self._claims, meta["namespace"], name)
            if claim is None:
                continue
            status = claim.get("status") or {}
            reserved = [r for r in status.get("reservedFor") or [] if r.get("uid") != uid]
            if len(reserved) == len(status.get("reservedFor") or []):
                continue
            updated = copy.deepcopy(claim)
            new_status = updated.setdefault("status", {})
            new_status["reservedFor"] = reserved
            if not reserved:
                new_status.pop("allocation", None)  # nobody uses it: its devices are free again
                new_status.pop("reservedFor", None)
            self.server.store.replace(self._claims, claim, updated)
