"""ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1), as the API server runs them.

After a write is defaulted and validated by its schema, every ValidatingAdmissionPolicyBinding
whose action is `Deny` has its policy evaluated against the request: the policy's
`matchConstraints.resourceRules` (group, version, operation, resource or `resource/subresource`,
with `*` wildcards) and `excludeResourceRules`, then its `matchConditions`, its `variables` (in
order, each seeing the ones before), and its `validations`. The first validation that is false
refuses the write as the API server does: HTTP 422, reason `Invalid` (or the validation's
`reason`), `<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding '<b>'
denied request: <message>`. An expression that fails to evaluate refuses the write when the
policy's `failurePolicy` is `Fail` (the default) and is ignored when it is `Ignore`.

The request's user is the `Impersonate-User` header (`kubectl --as`), else `system:admin`: the
emulator has no authentication. Not provided: `paramKind`/`paramRef`, `namespaceSelector`,
`objectSelector` and a binding's `matchResources` (all resources the policy matches are
validated), `messageExpression`, `auditAnnotations`, and the `Warn`/`Audit` actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from celpy import celtypes

from aisched.emulator.cel import CelError, CelEvaluator, to_cel
from aisched.emulator.errors import StatusError
from aisched.emulator.resources import ResourceType, builtin

__all__ = ["DEFAULT_USER", "POLICY_TYPES", "AdmissionPolicies", "Request"]

Obj = dict[str, Any]

#: Who a request comes from when it names no one.
DEFAULT_USER: Final = "system:admin"
_GROUP: Final = "admissionregistration.k8s.io"
_POLICIES: Final = (_GROUP, "validatingadmissionpolicies")
_BINDINGS: Final = (_GROUP, "validatingadmissionpolicybindings")


#: The two kinds, served by the emulator like any built-in one.
POLICY_TYPES: Final = (
    builtin(_GROUP, "v1", _POLICIES[1], "ValidatingAdmissionPolicy", namespaced=False, subs=("status",)),
    builtin(_GROUP, "v1", _BINDINGS[1], "ValidatingAdmissionPolicyBinding", namespaced=False),
)


class Request:
    """One write as admission sees it."""

    def __init__(
        self,
        resource: ResourceType,
        operation: str,
        obj: Obj | None,
        old: Obj | None,
        *,
        sub: str | None,
        user: str,
    ) -> None:
        self.resource = resource
        self.operation = operation
        self.obj = obj
        self.old = old
        self.sub = sub
        self.user = user
        meta = (obj or old or {}).get("metadata") or {}
        self.name = str(meta.get("name") or "")
        self.namespace = meta.get("namespace")

    def variables(self) -> dict[str, Any]:
        resource = self.resource
        return {
            "object": self.obj,
            "oldObject": self.old,
            "params": None,
            "request": {
                "operation": self.operation,
                "userInfo": {"username": self.user},
                "name": self.name,
                "namespace": self.namespace or "",
                "kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
                "resource": {
                    "group": resource.group,
                    "version": resource.version,
                    "resource": resource.plural,
                },
                "subResource": self.sub or "",
            },
        }


class AdmissionPolicies:
    """The policies and bindings stored in the emulator, evaluated on each write."""

    def __init__(self, objects: Callable[[tuple[str, str]], Iterable[Obj]], cel: CelEvaluator) -> None:
        """`objects((group, plural))` lists what is stored of a kind."""
        self._objects = objects
        self._cel = cel

    def validate(self, request: Request) -> None:
        """Refuse `request` (raise StatusError) if a policy bound with `Deny` says so."""
        bindings = [
            b
            for b in self._objects(_BINDINGS)
            if "Deny" in ((b.get("spec") or {}).get("validationActions") or [])
        ]
        if not bindings:
            return
        policies = {p["metadata"]["name"]: p for p in self._objects(_POLICIES)}
        for binding in sorted(bindings, key=lambda b: str(b["metadata"]["name"])):
            policy = policies.get(str((binding.get("spec") or {}).get("policyName") or ""))
            if policy is not None and _matches(policy.get("spec") or {}, request):
                self._evaluate(policy, binding, request)

    def _evaluate(self, policy: Obj, binding: Obj, request: Request) -> None:
        spec = policy.get("spec") or {}
        # As CEL values once, not once per expression: the object may be large.
        variables = {name: to_cel(value) for name, value in request.variables().items()}
        try:
            for condition in spec.get("matchConditions") or []:
                if not self._true(str(condition.get("expression", "")), variables):
                    return
            bound = celtypes.MapType()  # each variable sees the ones before it
            variables["variables"] = bound
            for variable in spec.get("variables") or []:
                value = self._cel.evaluate(str(variable.get("expression", "")), variables)
                bound[celtypes.StringType(str(variable["name"]))] = value
            for validation in spec.get("validations") or []:
                expression = str(validation.get("expression", ""))
                if not self._true(expression, variables):
                    message = str(validation.get("message") or f"failed expression: {expression.strip()}")
                    raise _denied(
                        policy, binding, request, message, str(validation.get("reason") or "Invalid")
                    )
        except CelError as exc:
            if spec.get("failurePolicy", "Fail") == "Fail":
                raise _denied(
                    policy, binding, request, f"expression evaluation error: {exc}", "Invalid"
                ) from None

    def _true(self, expression: str, variables: Mapping[str, Any]) -> bool:
        result = self._cel.evaluate(expression, variables)
        if not isinstance(result, celtypes.BoolType):
            raise CelError(f"expression {expression!r} gave {result!r}, not a bool")
        return bool(result)


def _matches(spec: Mapping[str, Any], request: Request) -> bool:
    constraints = spec.get("matchConstraints") or {}
    rules = constraints.get("resourceRules") or []
    excluded = constraints.get("excludeResourceRules") or []
    return any(_rule_matches(r, request) for r in rules) and not any(
        _rule_matches(r, request) for r in excluded
    )


def _rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    resource = request.resource

    def among(values: Any, value: str) -> bool:
        listed = [str(v) for v in values or []]
        return "*" in listed or value in listed

    if not (
        among(rule.get("apiGroups"), resource.group)
        and among(rule.get("apiVersions"), resource.version)
        and among(rule.get("operations"), request.operation)
    ):
        return False
    named = [str(v) for v in rule.get("resources") or []]
    plural, sub = resource.plural, request.sub
    if sub is None:
        return "*" in named or plural in named
    return any(n in ("*/*", f"{plural}/{sub}", f"{plural}/*", f"*/{sub}") for n in named)


def _denied(policy: Obj, binding: Obj, request: Request, message: str, reason: str) -> StatusError:
    resource = request.resource
    what = resource.plural if not resource.group else f"{resource.plural}.{resource.group}"
    text = (
        f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding "
        f"'{binding['metadata']['name']}' denied request: {message}"
    )
    codes = {"Invalid": 422, "Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}
    return StatusError(
        codes.get(reason, 422),
        reason,
        f'{what} "{request.name}" is forbidden: {text}',
        details={
            "name": request.name,
            "group": resource.group,
            "kind": resource.plural,
            "causes": [{"message": text}],
        },
    )
