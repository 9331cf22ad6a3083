"""What an event's own read touches, and how it patches the committed working copy (pure, no I/O).

An event names one resource. The reader re-reads it (its parent for a child resource, its hub for a hub
connection) and says which ids the read replaces (`FocusedRead.replace`: each id with everything under it) and
what ARM holds for them now (`FocusedRead.resources`: nothing for a 404). `patch_copy` applies that to the
transit projection committed last time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from shared.core.snapshot import transit_projection

JsonDict = dict[str, Any]

# An event costs at most this many ARM calls (its resource or parent, a hub's connection list, and one resource
# it newly references); anything more is left to the timer reconcile, with a warning.
MAX_EVENT_ARM_CALLS = 3


@dataclass(frozen=True, slots=True)
class FocusedRead:
    replace: tuple[str, ...] = ()  # ids (with their children) whose committed copy this read replaces
    resources: tuple[JsonDict, ...] = ()  # what ARM holds for them now; an id absent here was deleted (404)
    warnings: tuple[str, ...] = ()
    calls: int = 0


def top_level_id(resource_id: str) -> str | None:
    """`/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/<type>/<name>` of any id under it."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    if parts[4].lower() != "providers":
        return None
    return "/" + "/".join(parts[:8])


def subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[1].lower() if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _cut(resource_id: str | None, marker: str) -> str | None:
    if resource_id is None:
        return None
    parts = resource_id.rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    if marker in lowered:
        return "/".join(parts[: lowered.index(marker)])
    return resource_id


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props = resource.get("properties")
    return props if isinstance(props, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def references_of(resource: Mapping[str, Any]) -> list[str]:
    """The top-level resources this one points at that can decide a pair (gateway, VNet, circuit, hub)."""
    rtype = str(resource.get("type", "")).lower()
    props = _props(resource)
    out: list[str | None] = []
    if rtype == "microsoft.network/connections":
        out += [_ref(props.get("virtualNetworkGateway1")), _cut(_ref(props.get("peer")), "peerings")]
    elif rtype == "microsoft.network/virtualnetworkgateways":
        out += [_cut(_ref(_props(c).get("subnet")), "subnets") for c in _items(props.get("ipConfigurations"))]
    elif rtype == "microsoft.network/virtualnetworks":
        out += [_ref(_props(p).get("remoteVirtualNetwork")) for p in _items(props.get("virtualNetworkPeerings"))]
    elif rtype == "microsoft.network/virtualhubs/hubvirtualnetworkconnections":
        out.append(_ref(props.get("remoteVirtualNetwork")))
    elif rtype == "microsoft.network/expressroutegateways":
        out.append(_ref(props.get("virtualHub")))
        out += [_cut(_ref(_props(c).get("expressRouteCircuitPeering")), "peerings")
                for c in _items(props.get("expressRouteConnections"))]
    seen: dict[str, str] = {}
    for ref in out:
        top = top_level_id(ref) if ref else None
        if top is not None:
            seen.setdefault(top.lower(), top)
    return list(seen.values())


def unknown_references(resources: Iterable[Mapping[str, Any]], known: Callable[[str], bool],
                       read: Sequence[str]) -> list[str]:
    """References of `resources` that the working copy does not hold and this read did not cover."""
    covered = {r.lower() for r in read}
    out: list[str] = []
    for resource in resources:
        for ref in references_of(resource):
            if ref.lower() not in covered and not known(ref.lower()):
                covered.add(ref.lower())
                out.append(ref)
    return out


def project(resources: Iterable[Mapping[str, Any]]) -> list[JsonDict]:
    """The transit projection with types in lower case (Resource Graph's spelling; ARM GET spells them in
    camel case) and without null properties, so one resource read either way digests the same."""
    out = transit_projection(resources)
    for resource in out:
        rtype = resource.get("type")
        if isinstance(rtype, str) and not rtype.islower():
            resource["type"] = rtype.lower()
        props = resource.get("properties")
        if isinstance(props, dict) and None in props.values():
            # The projected query spells an absent property as null; the parser reads both alike.
            resource["properties"] = {k: v for k, v in props.items() if v is not None}
    return out


def patch_copy(copy: Sequence[JsonDict], read: FocusedRead) -> list[JsonDict] | None:
    """The working copy with the read applied (sorted by id), or None when the read changes nothing.

    A committed copy is sorted by lowercase id, so what the read replaces (a resource and its children) is found by
    bisection and the rest is kept in order: an event on a 20k-VNet copy no longer tests and sorts every resource.
    A copy out of order (written by an older version) is patched by a full pass, as before.
    """
    drop = tuple(r.lower().rstrip("/") for r in read.replace)
    keys = [id_key(r) for r in copy]
    added = by_id(project(read.resources))
    if all(a <= b for a, b in zip(keys, keys[1:], strict=False)):
        spans: list[tuple[int, int]] = []
        for d in drop:
            # The resource itself, then its children: every id under `d/` sorts between `d/` and `d0` ('0' follows
            # '/'); ids that merely start with `d` (`d-2`, `d.x`) sort outside both spans.
            spans.append((bisect_left(keys, d), bisect_right(keys, d)))
            spans.append((bisect_left(keys, d + "/"), bisect_left(keys, d + "0")))
        taken = sorted({i for lo, hi in spans for i in range(lo, hi)})
        removed = [copy[i] for i in taken]
        if removed == added:  # `removed` is in id order already
            return None
        kept_keys, kept = list(keys), list(copy)
        for i in reversed(taken):
            del kept_keys[i], kept[i]
        for resource in added:
            key = id_key(resource)
            at = bisect_right(kept_keys, key)
            kept_keys.insert(at, key)
            kept.insert(at, resource)
        return kept

    def dropped(key: str) -> bool:
        return any(key == d or key.startswith(d + "/") for d in drop)

    kept_any: list[JsonDict] = []
    removed_any: list[JsonDict] = []
    for resource, key in zip(copy, keys, strict=True):
        (removed_any if dropped(key) else kept_any).append(resource)
    if by_id(removed_any) == added:
        return None
    return by_id(kept_any + added)


def id_key(resource: Mapping[str, Any]) -> str:
    """A resource's place in the working copy: its id in lower case."""
    return str(resource.get("id", "")).lower()


_Resource = TypeVar("_Resource", bound=Mapping[str, Any])


def by_id(items: Iterable[_Resource]) -> list[_Resource]:
    """Resources in the working copy's order (lowercase id; stable)."""
    return sorted(items, key=id_key)


def splice_canonical(data: bytes, before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
                     ) -> bytes | None:
    """The canonical JSON of `after` (as auditor.canonical_digest writes it), made from `data`, the canonical JSON
    of `before`, when both are in id order and `after` shares every unchanged resource object with `before` (an
    event's patch: resources replaced, removed or added); None when that cannot be shown (the caller then writes
    `after` whole).

    A canonical list is `[` + its items' canonical JSON joined by `,` + `]`, so each run of kept items is copied
    from `data` as it stands and only the new items are written: a few small writes and one copy of the 28 MB of
    a 20k-VNet copy, instead of writing every item again. A run's ends are found by the text of the item that
    bounds it, which must occur in `data` exactly once, between separators (ids are unique, so it can only be
    that item itself).
    """
    view = memoryview(data)
    located: dict[int, tuple[int, int]] = {}
    n = len(before)
    gone: set[int] = set()  # items of `before` that `after` removed or replaced

    def span(k: int) -> tuple[int, int]:
        """Where before[k]'s text starts and ends in `data`."""
        if k not in located:
            text = orjson.dumps(before[k], option=orjson.OPT_SORT_KEYS)
            start = data.find(text)
            end = start + len(text)
            if (start < 1 or data.find(text, start + 1) != -1 or data[start - 1:start] not in (b"[", b",")
                    or data[end:end + 1] not in (b",", b"]")):
                raise LookupError(k)
            located[k] = (start, end)
        return located[k]

    def run_bytes(first: int, last: int) -> memoryview:
        """before[first..last] as `data` spells them: bounded by a removed neighbour's text when there is one
        (it is found anyway), else by the run's own end items."""
        start = 1 if first == 0 else span(first - 1)[1] + 1 if first - 1 in gone else span(first)[0]
        end = len(data) - 1 if last == n - 1 else span(last + 1)[0] - 1 if last + 1 in gone else span(last)[1]
        return view[start:end]


    parts: list[bytes | memoryview] = []
    pending: list[tuple[str, Any]] = []  # kept runs of `before` and new items, in `after` order
    i, first = 0, -1
    try:
        if data[:1] != b"[" or data[-1:] != b"]":
            return None
        for item in after:
            if i < n and before[i] is item:  # kept: the run goes on
                if first < 0:
                    first = i
                i += 1
                continue
            if first >= 0:
                pending.append(("run", (first, i - 1)))
                first = -1
            key = id_key(item)
            while i < n and before[i] is not item and id_key(before[i]) <= key:
                gone.add(i)  # removed, or replaced by `item` (same id)
                i += 1
            if i < n and before[i] is item:  # kept, after removed ones
                first = i
                i += 1
                continue
            pending.append(("new", item))
        if first >= 0:
            pending.append(("run", (first, i - 1)))
        gone.update(range(i, n))  # removed at the end
        for kind, value in pending:
            if parts:
                parts.append(b",")
            if kind == "run":
                parts.append(run_bytes(*value))
            else:
                parts.append(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except (LookupError, TypeError):  # not found once between separators; orjson.JSONEncodeError is a TypeError
        return None
    return b"".join([b"[", *parts, b"]"])
