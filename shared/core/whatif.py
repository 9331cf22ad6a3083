"""What a change would open and close: edits applied to the raw ARM JSON, then the one parser and the one diff.

Changes come from `--set`/`--delete`, a compiled ARM template (what `az bicep build` writes) or the JSON of
`az deployment group what-if` (WhatIfOperationResult). Expressions are evaluated only when certain, never guessed.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.core.diff import Diff, diff_pairs
from shared.core.model import PairSet, ResourceId, Topology
from shared.core.snapshot import TRANSIT_TYPES, parse_resources
from shared.core.transit import compute_pairs

Resource = dict[str, Any]
CIRCUIT_PEERING = "microsoft.network/expressroutecircuits/peerings"
RELEVANT_TYPES = TRANSIT_TYPES | {CIRCUIT_PEERING}
# A new child resource of a type the parser reads only inside its parent is embedded there.
EMBED_IN_PARENT = {CIRCUIT_PEERING: "peerings"}
# Types whose effect cannot be bounded: a deployment script runs arbitrary code (az CLI / PowerShell) with its
# identity's rights, and a nested deployment whose content what-if could not expand may write anything.
UNRESTRICTED_TYPES = {"microsoft.resources/deploymentscripts", "microsoft.resources/deployments"}
ROOT_KEYS = ("properties.", "tags.")


class ChangeError(ValueError):
    """A change that cannot be applied or understood (unknown resource, ambiguous name, expression not evaluable)."""


@dataclass(frozen=True, slots=True)
class PropertySet:
    """`--set RESOURCE PROPERTY=VALUE`: PROPERTY is a dotted path under `properties` (or from `tags.`)."""

    resource: str
    path: str
    value: Any


@dataclass(frozen=True, slots=True)
class ResourcePut:
    """A resource written by a deployment: `merge` lays its properties over the current ones (a template's
    PUT body), otherwise it replaces the resource (what-if's predicted `after`)."""

    resource: Resource
    merge: bool


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    before: Topology
    after: Topology
    before_pairs: PairSet
    after_pairs: PairSet
    diff: Diff


def parse_set(resource: str, assignment: str) -> PropertySet:
    """`allowRemoteVnetTraffic=true` -> PropertySet; the value is JSON when it parses as JSON, else a string."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path.strip():
        raise ChangeError(f"--set {resource} {assignment}: expected PROPERTY=VALUE")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return PropertySet(resource=resource, path=path.strip(), value=value)


# ---------------------------------------------------------------------------------------------- locating resources

def _walk(resources: list[Resource]) -> Iterator[tuple[list[Any], int, Resource]]:
    """Every resource, top-level or embedded in another's properties (peerings, circuit peerings, connections)."""
    def inner(container: list[Any], index: int, res: Resource) -> Iterator[tuple[list[Any], int, Resource]]:
        yield container, index, res
        props = res.get("properties")
        if isinstance(props, dict):
            for value in props.values():
                if isinstance(value, list):
                    for j, item in enumerate(value):
                        if isinstance(item, dict) and isinstance(item.get("id"), str) and (
                                "name" in item or "properties" in item):
                            yield from inner(value, j, item)
    for i, res in enumerate(resources):
        yield from inner(resources, i, res)


def _names_chain(rid: str) -> list[str]:
    parts = [p for p in rid.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return parts[-1:]
    start = len(lowered) - 1 - lowered[::-1].index("providers")
    return parts[start + 3::2]


def _occurrences(resources: list[Resource], ref: str) -> list[tuple[list[Any], int, Resource]]:
    """Every occurrence of the resource `ref` (an id, a name, or `parent/child` names); ChangeError if unknown."""
    found = list(_walk(resources))
    if ref.startswith("/"):
        key = ResourceId.parse(ref).key
        hits = [f for f in found if ResourceId.parse(str(f[2]["id"])).key == key]
        if not hits:
            raise ChangeError(f"no resource {ref} in the snapshot")
        return hits
    wanted = [p.lower() for p in ref.strip("/").split("/")]
    hits = [f for f in found if [n.lower() for n in _names_chain(str(f[2]["id"]))][-len(wanted):] == wanted]
    ids = sorted({ResourceId.parse(str(f[2]["id"])) for f in hits})
    if not ids:
        raise ChangeError(f"no resource named {ref!r} in the snapshot")
    if len(ids) > 1:
        raise ChangeError(f"resource name {ref!r} is ambiguous: {', '.join(i.value for i in ids)}; give the id")
    return hits


def _set_path(res: Resource, path: str, value: Any, where: str) -> None:
    rooted = path.startswith(ROOT_KEYS)
    node: Any = res if rooted else res.setdefault("properties", {})
    steps = path.split(".")
    for step in steps[:-1]:
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict):
            node = node.setdefault(step, {})
        else:
            raise ChangeError(f"{where}: cannot set {path}: {step!r} is not an object")
    last = steps[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ChangeError(f"{where}: cannot set {path}: not an object")


def _put(resources: list[Resource], put: ResourcePut) -> None:
    new = copy.deepcopy(put.resource)
    rid = str(new["id"])
    try:
        hits = _occurrences(resources, rid)
    except ChangeError:
        hits = []
    for _, _, res in hits:
        props = res.setdefault("properties", {})
        new_props = new.get("properties") if isinstance(new.get("properties"), dict) else {}
        if put.merge:
            props.update(copy.deepcopy(new_props))
            if isinstance(new.get("tags"), dict):
                res["tags"] = copy.deepcopy(new["tags"])
        else:
            kept = props.get("virtualNetworkPeerings")
            res.clear()
            res.update(copy.deepcopy(new))
            res.setdefault("properties", {})
            # Peerings are child resources: a VNet body without them leaves them in place.
            if kept is not None and "virtualNetworkPeerings" not in res["properties"]:
                res["properties"]["virtualNetworkPeerings"] = kept
    if hits:
        return
    rtype = str(new.get("type", "")).lower()
    if rtype in EMBED_IN_PARENT:
        parent = ResourceId.parse(rid).parent().value
        try:
            parents = _occurrences(resources, parent)
        except ChangeError:
            parents = []
        for _, _, res in parents:
            res.setdefault("properties", {}).setdefault(EMBED_IN_PARENT[rtype], []).append(copy.deepcopy(new))
        if parents:
            return
    resources.append(new)


def apply_changes(resources: Sequence[Mapping[str, Any]], sets: Sequence[PropertySet] = (),
                  deletes: Sequence[str] = (), *, puts: Sequence[ResourcePut] = (),
                  delete_ids: Sequence[str] = ()) -> list[Resource]:
    """A copy of `resources` with `puts`, then `sets`, then deletions applied (input left untouched).

    `deletes` name resources the user gave (must exist); `delete_ids` come from a deployment (may be absent).
    """
    out: list[Resource] = copy.deepcopy([dict(r) for r in resources])
    for put in puts:
        _put(out, put)
    for s in sets:
        for _, _, res in _occurrences(out, s.resource):
            _set_path(res, s.path, copy.deepcopy(s.value), f"--set {s.resource}")
    targets: list[tuple[list[Any], int, Resource]] = []
    for ref in deletes:
        targets += _occurrences(out, ref)
    for rid in delete_ids:
        try:
            targets += _occurrences(out, rid)
        except ChangeError:
            continue  # deleting what the snapshot does not hold changes nothing we can see
    by_container: dict[int, tuple[list[Any], set[int]]] = {}
    for container, index, _ in targets:
        by_container.setdefault(id(container), (container, set()))[1].add(index)
    for container, indexes in by_container.values():
        for index in sorted(indexes, reverse=True):
            del container[index]
    return out


def whatif(resources: Sequence[Mapping[str, Any]], sets: Sequence[PropertySet] = (), deletes: Sequence[str] = (),
           *, puts: Sequence[ResourcePut] = (), delete_ids: Sequence[str] = (),
           source: str = "snapshot") -> WhatIfResult:
    """The pairs the change would open and close: parse before and after with the one parser, diff them."""
    changed = apply_changes(resources, sets, deletes, puts=puts, delete_ids=delete_ids)
    before = parse_resources(resources, source=source)
    after = parse_resources(changed, source=source)
    before_pairs, after_pairs = compute_pairs(before), compute_pairs(after)
    diff = diff_pairs(before_pairs, after_pairs, before_topology=before, after_topology=after)
    return WhatIfResult(before, after, before_pairs, after_pairs, diff)


# ----------------------------------------------------------------------------------------- what-if JSON (REST)

@dataclass(frozen=True, slots=True)
class DeploymentChanges:
    puts: tuple[ResourcePut, ...]
    delete_ids: tuple[str, ...]


def _type_of(rid: str) -> str:
    parts = [p for p in rid.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return ""
    start = len(lowered) - 1 - lowered[::-1].index("providers")
    rest = lowered[start + 1:]
    return "/".join([rest[0], *rest[1::2]]) if rest else ""


def changes_from_whatif(doc: Mapping[str, Any]) -> DeploymentChanges:
    """`az deployment group what-if` JSON (`changes` at the top, or under `properties` as REST returns it)."""
    status = str(doc.get("status") or "").lower()
    if doc.get("error") or status in ("failed", "canceled"):
        err: Mapping[str, Any] = doc["error"] if isinstance(doc.get("error"), dict) else {}
        raise ChangeError(f"the what-if operation did not succeed: {err.get('code', status)} {err.get('message', '')}"
                          .rstrip())
    props: Mapping[str, Any] = doc["properties"] if isinstance(doc.get("properties"), dict) else {}
    changes = doc.get("changes", props.get("changes"))
    if not isinstance(changes, list):
        raise ChangeError("what-if JSON has no 'changes' array")
    puts: list[ResourcePut] = []
    deletes: list[str] = []
    unjudged: list[str] = []  # a gate fails closed: every change we cannot judge is named, then refused
    for i, ch in enumerate(changes):
        if not isinstance(ch, dict) or not isinstance(ch.get("resourceId"), str):
            raise ChangeError(f"what-if change [{i}] has no resourceId")
        rid, kind = ch["resourceId"], str(ch.get("changeType", "")).lower()
        rtype = _type_of(rid)
        relevant, unrestricted = rtype in RELEVANT_TYPES, rtype in UNRESTRICTED_TYPES
        what = f"{ch.get('changeType')} of {rid}"
        if kind in ("ignore", "nochange"):
            continue
        if kind == "unsupported":
            # What-if could not predict this resource (reference(), runtime values, expansion limits).
            if relevant or unrestricted:
                reason = ch.get("unsupportedReason")
                unjudged.append(what + (f" ({reason})" if reason else ""))
            continue
        if kind not in ("delete", "create", "modify", "deploy"):
            unjudged.append(f"{what}: unknown changeType")
            continue
        if unrestricted:
            unjudged.append(f"{what}: a {rtype.rsplit('/', 1)[-1]} resource can change anything")
            continue
        if kind == "delete":
            deletes.append(rid)
            continue
        after = ch.get("after")
        if not isinstance(after, dict):
            if relevant:
                raise ChangeError(f"what-if change {ch.get('changeType')} of {rid} has no 'after' payload; run "
                                  "what-if with --result-format FullResourcePayloads")
            continue
        body = dict(after)
        body["id"] = rid
        body.setdefault("type", rtype)
        body.setdefault("name", rid.rstrip("/").rsplit("/", 1)[-1])
        puts.append(ResourcePut(body, merge=False))
    if unjudged:
        raise ChangeError(f"cannot judge {len(unjudged)} change(s), so this gate fails closed: "
                          + "; ".join(unjudged))
    return DeploymentChanges(tuple(puts), tuple(deletes))


# -------------------------------------------------------------------------------------- ARM template expressions

@dataclass(frozen=True, slots=True)
class Scope:
    """The deployment's target: subscription id and resource group name."""

    subscription: str
    resource_group: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        rid = ResourceId.parse(text)
        if not rid.subscription or not rid.resource_group:
            raise ChangeError(f"scope {text!r}: expected /subscriptions/SUB/resourceGroups/RG")
        return cls(rid.subscription, rid.resource_group)


class _ScopeUnknown(Exception):
    pass


@dataclass(slots=True)
class _Context:
    parameters: dict[str, Any]
    variables: dict[str, Any]
    scope: Scope | None
    raw_variables: Mapping[str, Any]
    raw_parameters: Mapping[str, Any]
    resolving: set[str]


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][\w]*)|(?P<op>[(),.\[\]]))")


class _Expr:
    """A recursive-descent reader of one ARM template expression (the text inside `[...]`)."""

    def __init__(self, text: str, ctx: _Context) -> None:
        self.text, self.ctx, self.pos = text, ctx, 0
        self.tokens: list[tuple[str, str]] = []
        while self.pos < len(text):
            if not text[self.pos:].strip():
                break
            m = _TOKEN.match(text, self.pos)
            if m is None:
                raise ChangeError(f"cannot evaluate expression [{text}]: unexpected {text[self.pos:][:10]!r}")
            kind = m.lastgroup or "op"
            self.tokens.append((kind, m.group(kind)))
            self.pos = m.end()
        self.i = 0

    def fail(self, why: str) -> ChangeError:
        return ChangeError(f"cannot evaluate expression [{self.text}]: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise self.fail(f"expected {value or 'more'}")
        self.i += 1
        return tok

    def evaluate(self) -> Any:
        value = self.primary()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return value

    def primary(self) -> Any:
        kind, tok = self.take()
        if kind == "str":
            value: Any = tok[1:-1].replace("''", "'")
        elif kind == "num":
            value = int(tok)
        elif kind == "name":
            self.take("(")
            args: list[Any] = []
            while self.peek() is not None and self.peek()[1] != ")":  # type: ignore[index]
                args.append(self.primary())
                if self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                    self.take(",")
            self.take(")")
            value = self.call(tok, args)
        else:
            raise self.fail(f"unexpected {tok!r}")
        while (nxt := self.peek()) is not None and nxt[1] in (".", "["):
            if self.take()[1] == ".":
                key = self.take()[1]
            else:
                key = self.primary()
                self.take("]")
            try:
                value = value[key] if not isinstance(value, dict) else _get_ci(value, key)
            except (KeyError, IndexError, TypeError):
                raise self.fail(f"no {key!r} in the value") from None
        return value

    def call(self, name: str, args: list[Any]) -> Any:
        fn = _FUNCTIONS.get(name.lower())
        if fn is None:
            raise self.fail(f"function {name}() is not supported")
        try:
            return fn(self.ctx, args)
        except _ScopeUnknown:
            raise
        except ChangeError as exc:
            raise self.fail(str(exc)) from None
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise self.fail(f"{name}(): {exc}") from None


def _get_ci(d: Mapping[str, Any], key: Any) -> Any:
    for k, v in d.items():
        if str(k).lower() == str(key).lower():
            return v
    raise KeyError(key)


def _param(ctx: _Context, args: list[Any]) -> Any:
    name = str(args[0])
    for k, v in ctx.parameters.items():
        if k.lower() == name.lower():
            return v
    for k, spec in ctx.raw_parameters.items():
        if k.lower() == name.lower():
            if not isinstance(spec, dict) or "defaultValue" not in spec:
                raise ChangeError(f"parameter {name!r} has no value and no defaultValue")
            ctx.parameters[k] = _evaluate(spec["defaultValue"], ctx)
            return ctx.parameters[k]
    raise ChangeError(f"no parameter {name!r} in the template")


def _variable(ctx: _Context, args: list[Any]) -> Any:
    name = str(args[0])
    for k, v in ctx.variables.items():
        if k.lower() == name.lower():
            return v
    for k, raw in ctx.raw_variables.items():
        if k.lower() == name.lower():
            if k in ctx.resolving:
                raise ChangeError(f"variable {name!r} refers to itself")
            ctx.resolving.add(k)
            ctx.variables[k] = _evaluate(raw, ctx)
            ctx.resolving.discard(k)
            return ctx.variables[k]
    raise ChangeError(f"no variable {name!r} in the template")


def _need_scope(ctx: _Context) -> Scope:
    if ctx.scope is None:
        raise _ScopeUnknown()
    return ctx.scope


def _resource_id(ctx: _Context, args: list[Any]) -> str:
    texts = [str(a) for a in args]
    type_at = next((i for i, t in enumerate(texts) if "/" in t), None)
    if type_at is None or type_at > 2:
        raise ChangeError("resourceId(): no resource type argument")
    head = texts[:type_at]
    if len(head) == 2:
        sub, rg = head
    elif len(head) == 1:
        sub, rg = _need_scope(ctx).subscription, head[0]
    else:
        scope = _need_scope(ctx)
        sub, rg = scope.subscription, scope.resource_group
    return _build_id(sub, rg, texts[type_at], texts[type_at + 1:])


def _build_id(sub: str, rg: str, rtype: str, names: Sequence[str]) -> str:
    ns, *types = rtype.split("/")
    if len(types) != len(names) or not types:
        raise ChangeError(f"resource type {rtype} needs {len(types)} name segment(s), got {len(names)}")
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{path}"


def _format(ctx: _Context, args: list[Any]) -> str:
    def repl(m: re.Match[str]) -> str:
        return _text(args[1 + int(m.group(1))])
    return re.sub(r"\{(\d+)(?::[^}]*)?\}", repl, str(args[0]))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else json.dumps(value)


def _concat(ctx: _Context, args: list[Any]) -> Any:
    if args and all(isinstance(a, list) for a in args):
        return [x for a in args for x in a]
    return "".join(_text(a) for a in args)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return value != 0
    raise ChangeError(f"{value!r} is not a boolean")


_FUNCTIONS: dict[str, Callable[[_Context, list[Any]], Any]] = {
    "parameters": _param,
    "variables": _variable,
    "concat": _concat,
    "format": _format,
    "resourceid": _resource_id,
    "resourcegroup": lambda ctx, a: {"name": _need_scope(ctx).resource_group,
                                     "id": f"/subscriptions/{_need_scope(ctx).subscription}/resourceGroups/"
                                           f"{_need_scope(ctx).resource_group}"},
    "subscription": lambda ctx, a: {"subscriptionId": _need_scope(ctx).subscription,
                                    "id": f"/subscriptions/{_need_scope(ctx).subscription}"},
    "tolower": lambda ctx, a: str(a[0]).lower(),
    "toupper": lambda ctx, a: str(a[0]).upper(),
    "string": lambda ctx, a: _text(a[0]),
    "int": lambda ctx, a: int(a[0]),
    "bool": lambda ctx, a: _bool(a[0]),
    "true": lambda ctx, a: True,
    "false": lambda ctx, a: False,
    "null": lambda ctx, a: None,
    "not": lambda ctx, a: not _bool(a[0]),
    "and": lambda ctx, a: all(_bool(x) for x in a),
    "or": lambda ctx, a: any(_bool(x) for x in a),
    "equals": lambda ctx, a: a[0] == a[1],
    "if": lambda ctx, a: a[1] if _bool(a[0]) else a[2],
}


def _evaluate(value: Any, ctx: _Context) -> Any:
    """A template value with every `[expression]` string evaluated (`[[` escapes a literal `[`)."""
    if isinstance(value, str):
        if value.startswith("[["):
            return value[1:]
        if value.startswith("[") and value.endswith("]"):
            return _Expr(value[1:-1], ctx).evaluate()
        return value
    if isinstance(value, list):
        return [_evaluate(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _evaluate(v, ctx) for k, v in value.items()}
    return value


def _template_resources(doc: Mapping[str, Any], ctx: _Context, parent: tuple[str, str] | None = None
                        ) -> Iterator[Resource]:
    raw = doc.get("resources", [])
    items = list(raw.values()) if isinstance(raw, dict) else raw  # languageVersion 2.0: symbolic names
    if not isinstance(items, list):
        raise ChangeError("template 'resources' is neither an array nor an object")
    for item in items:
        if not isinstance(item, dict) or item.get("existing") is True:
            continue  # an `existing` resource is a reference, not something the deployment writes
        rtype = str(_evaluate(item.get("type", ""), ctx))
        nested = parent is not None and not rtype.lower().startswith(parent[0].lower() + "/")
        if parent is not None and nested:
            rtype = f"{parent[0]}/{rtype}"
        if rtype.lower() == "microsoft.resources/deploymentscripts":
            raise ChangeError(f"cannot judge deployment script {item.get('name')!r} "
                              "(Microsoft.Resources/deploymentScripts runs code that can change anything), so this "
                              "gate fails closed")
        if rtype.lower() not in RELEVANT_TYPES and rtype.lower() != "microsoft.resources/deployments":
            continue  # only what can open or close a path is evaluated
        name = _evaluate(item.get("name", ""), ctx)
        if parent is not None and nested:
            name = f"{parent[1]}/{name}"
        if "condition" in item and not _bool(_evaluate(item["condition"], ctx)):
            continue
        if "copy" in item:
            raise ChangeError(f"cannot evaluate expression: resource {name} ({rtype}) uses a copy loop, which is "
                              "not supported")
        if rtype.lower() == "microsoft.resources/deployments":
            yield from _nested_deployment(item, ctx)
            continue
        scope = _need_scope(ctx)
        sub = str(_evaluate(item.get("subscriptionId", scope.subscription), ctx))
        rg = str(_evaluate(item.get("resourceGroup", scope.resource_group), ctx))
        rid = _build_id(sub, rg, rtype, str(name).split("/"))
        body: Resource = {"id": rid, "name": str(name).rsplit("/", 1)[-1], "type": rtype,
                          "properties": _evaluate(item.get("properties", {}), ctx)}
        if "tags" in item:
            body["tags"] = _evaluate(item["tags"], ctx)
        yield body
        if isinstance(item.get("resources"), list):
            yield from _template_resources({"resources": item["resources"]}, ctx, (rtype, str(name)))


def _nested_deployment(item: Mapping[str, Any], ctx: _Context) -> Iterator[Resource]:
    props: Mapping[str, Any] = item["properties"] if isinstance(item.get("properties"), dict) else {}
    template = props.get("template")
    if not isinstance(template, dict):
        raise ChangeError(f"cannot evaluate expression: nested deployment {item.get('name')} has no inline "
                          "template (templateLink is not followed)")
    inner_scope = (props.get("expressionEvaluationOptions") or {}).get("scope", "outer").lower() == "inner"
    scope = _need_scope(ctx)
    sub = str(_evaluate(item.get("subscriptionId", scope.subscription), ctx))
    rg = str(_evaluate(item.get("resourceGroup", scope.resource_group), ctx))
    if not inner_scope:
        yield from _template_resources(template, ctx)
        return
    values = {k: _evaluate(v.get("value"), ctx) for k, v in (props.get("parameters") or {}).items()
              if isinstance(v, dict) and "value" in v}
    inner = _Context(parameters=values, variables={}, scope=Scope(sub, rg),
                     raw_variables=template.get("variables") or {}, raw_parameters=template.get("parameters") or {},
                     resolving=set())
    yield from _template_resources(template, inner)


def _is_template(doc: Any) -> bool:
    return isinstance(doc, dict) and "resources" in doc and (
        "deploymentTemplate" in str(doc.get("$schema", "")) or "contentVersion" in doc)


def _is_whatif(doc: Any) -> bool:
    return isinstance(doc, dict) and ("changes" in doc or isinstance((doc.get("properties") or {}).get("changes"),
                                                                       list))


def infer_scope(doc: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]) -> Scope | None:
    """The one resource group holding every snapshot resource the template names literally, if there is one."""
    raw = doc.get("resources", [])
    items = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    scopes: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"].startswith("["):
            continue
        rtype = str(item.get("type", "")).lower()
        for res in resources:
            rid = ResourceId.parse(str(res.get("id", "")))
            if _type_of(rid.value) == rtype and "/".join(_names_chain(rid.value)).lower() == item["name"].lower():
                scopes.add((rid.subscription.lower(), rid.resource_group.lower()))
    if not scopes:
        subs_rgs = {(ResourceId.parse(str(r.get("id", ""))).subscription.lower(),
                     ResourceId.parse(str(r.get("id", ""))).resource_group.lower()) for r in resources}
        scopes = subs_rgs if len(subs_rgs) == 1 else set()
    return Scope(*next(iter(scopes))) if len(scopes) == 1 else None


def changes_from_template(doc: Any, *, scope: Scope | None = None,
                          resources: Sequence[Mapping[str, Any]] = ()) -> DeploymentChanges:
    """The writes of a compiled ARM template, or the changes of what-if JSON (told apart by their shape).

    `scope` is the deployment's resource group; when absent it is inferred from `resources` (the snapshot).
    """
    if _is_whatif(doc):
        return changes_from_whatif(doc)
    if not _is_template(doc):
        raise ChangeError("not an ARM template (no '$schema'/'contentVersion' with 'resources') nor what-if JSON "
                          "(no 'changes')")
    target = scope or infer_scope(doc, resources)
    ctx = _Context(parameters={}, variables={}, scope=target, raw_variables=doc.get("variables") or {},
                   raw_parameters=doc.get("parameters") or {}, resolving=set())
    try:
        puts = tuple(ResourcePut(r, merge=True) for r in _template_resources(doc, ctx))
    except _ScopeUnknown:
        raise ChangeError("cannot evaluate expression: the deployment's resource group is unknown (the template's "
                          "resources are in several or none of the snapshot's); pass --scope "
                          "/subscriptions/SUB/resourceGroups/RG") from None
    return DeploymentChanges(puts, ())
