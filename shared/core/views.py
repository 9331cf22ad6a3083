"""JSON documents and readable tables for pairs and diffs (the CLI's and the alerts' shared vocabulary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from shared.core.chain import holds_float
from shared.core.diff import Diff, PairChange
from shared.core.escape import controls, terminal_lines
from shared.core.model import PairSet, ResourceId, Route, Topology, TransitPair
from shared.core.transit import Endpoint, endpoints_of


def _endpoint_json(topology: Topology, vnet: ResourceId, gateways: Sequence[ResourceId]) -> dict[str, Any]:
    known = topology.vnets.get(vnet)
    return {
        "id": vnet.value,
        "name": vnet.name,
        "subscription": vnet.subscription,
        "resourceGroup": vnet.resource_group,
        "addressPrefixes": list(known.address_prefixes) if known else [],
        "tags": dict(known.tags) if known else {},
        "gateways": [g.value for g in gateways],
    }


def _gateways_of(pair: TransitPair, vnet: ResourceId, endpoints: Mapping[ResourceId, Endpoint]) -> list[ResourceId]:
    """The gateways on the pair's routes that `vnet` sits behind."""
    return sorted({g for r in pair.routes for g in r.gateways if g in endpoints and vnet in endpoints[g].domain})


def pair_json(pair: TransitPair, topology: Topology, *, status: str | None = None,
              endpoints: Mapping[ResourceId, Endpoint] | None = None) -> dict[str, Any]:
    """The pair as JSON (ChangeDocs makes the same documents for the many pairs of one diff)."""
    eps = endpoints if endpoints is not None else endpoints_of(topology)
    return {
        "vnets": [pair.a.value, pair.b.value],
        "status": status or pair.status,
        "circuits": [c.value for c in pair.circuits],
        "gateways": [g.value for g in pair.gateways],
        "warnings": list(pair.warnings),
        "endpoints": [_endpoint_json(topology, v, _gateways_of(pair, v, eps)) for v in (pair.a, pair.b)],
    }


def pairs_json(pairs: PairSet, topology: Topology, *, lazy: bool = False) -> dict[str, Any]:
    """`{"pairs": [...], "warnings": [...]}`; with `lazy`, "pairs" is an iterator whose documents share the
    parts that repeat (one VNet's endpoint in all its pairs): for an encoder that reads each once, never to edit.
    """
    eps = pairs.endpoints if pairs.endpoints else endpoints_of(topology)
    if not lazy:
        return {"pairs": [pair_json(p, topology, endpoints=eps) for p in pairs.pairs.values()],
                "warnings": list(pairs.warnings)}
    builder = _LazyPairDocs(topology, eps)
    return {"pairs": (builder.doc(p) for p in pairs.pairs.values()), "warnings": list(pairs.warnings)}


_T = TypeVar("_T")


class _LazyPairDocs:
    """pair_json for half a million pairs: what repeats across pairs is built once.

    A route (circuit and two gateways) is shared by every pair between two gateway groups, and a VNet's
    endpoint document (id, prefixes, tags, its gateways) by all its pairs; both are kept here by identity
    (routes: the Route object is held, so its id cannot be reused) and by key. The documents share them, so
    they are read-only.

    `float_free`: whether no document made so far holds a float. The parsed model holds none (the parse makes
    strings, booleans and None of what it reads); each part is checked once as it is made.
    """

    def __init__(self, topology: Topology, endpoints: Mapping[ResourceId, Endpoint]) -> None:
        self.topology, self.endpoints = topology, endpoints
        self.routes: dict[int, tuple[Route, str, list[str], list[str], list[str]]] = {}
        self.sides: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        # VNet key -> the gateways it sits behind. Most VNets sit behind one: their side of every pair is then
        # that gateway (a pair's VNet is always behind one of its routes' gateways), found without hashing ids.
        behind: dict[str, list[ResourceId]] = {}
        for ep in endpoints.values():
            for vnet in ep.domain:
                behind.setdefault(vnet.key, []).append(ep.id)
        self.single = {key: gws for key, gws in behind.items() if len(gws) == 1}
        self.single_docs: dict[str, dict[str, Any]] = {}
        self.float_free = True

    def _checked(self, part: _T) -> _T:
        if self.float_free and holds_float(part):
            self.float_free = False
        return part

    def _route(self, route: Route) -> tuple[Route, str, list[str], list[str], list[str]]:
        known = self.routes.get(id(route))
        if known is None:
            # A one-route pair's status, circuits, gateways and warnings are its route's: read them through
            # TransitPair itself (whatever VNets it joins), so that the rules stay in one place.
            pair_like = TransitPair(a=route.gateways[0], b=route.gateways[1], routes=(route,))
            known = self.routes[id(route)] = self._checked((route, pair_like.status,
                                                            [c.value for c in pair_like.circuits],
                                                            [g.value for g in pair_like.gateways],
                                                            list(pair_like.warnings)))
        return known

    def _side(self, pair: TransitPair, vnet: ResourceId) -> dict[str, Any]:
        known = self.single_docs.get(vnet.key)
        if known is not None:
            return known
        if (only := self.single.get(vnet.key)) is not None:
            known = self.single_docs[vnet.key] = self._checked(_endpoint_json(self.topology, vnet, only))
            return known
        gateways = _gateways_of(pair, vnet, self.endpoints)
        key = (vnet.key, tuple(g.key for g in gateways))
        known = self.sides.get(key)
        if known is None:
            known = self.sides[key] = self._checked(_endpoint_json(self.topology, vnet, gateways))
        return known

    def doc(self, pair: TransitPair) -> dict[str, Any]:
        if len(pair.routes) == 1:
            _, status, circuits, gateways, warnings = self._route(pair.routes[0])
        else:
            status, circuits = pair.status, [c.value for c in pair.circuits]
            gateways, warnings = self._checked(([g.value for g in pair.gateways], list(pair.warnings)))
        return {"vnets": [pair.a.value, pair.b.value], "status": status, "circuits": circuits,
                "gateways": gateways, "warnings": warnings, "endpoints": [self._side(pair, pair.a),
                                                                          self._side(pair, pair.b)]}


def change_json(change: PairChange, endpoints: Mapping[ResourceId, Endpoint] | None = None) -> dict[str, Any]:
    """The change as JSON."""
    doc = pair_json(change.pair, change.topology, status="pending" if change.pending else "confirmed",
                    endpoints=endpoints)
    doc["cause"] = [c.to_json() for c in change.causes]
    return doc


class ChangeDocs:
    """change_json for the many changes of one diff (97,000 for a large change), with what repeats made once: the
    pair's part by a _LazyPairDocs of its topology (before for a closed pair, after for an opened one), and the
    cause documents once per causes tuple (the explainer hands the same one to every pair with the same changes;
    each pair's `cause` list is its own). The documents share those parts, so they are read-only.

    `float_free`: whether no document made so far holds a float (each part is checked once as it is made), so a
    large change's 109 MB of audit text need not be scanned for one (chain.canonical_array_bytes).
    """

    def __init__(self) -> None:
        self._pairs: dict[int, tuple[Topology, _LazyPairDocs]] = {}  # by the topology's identity (held here)
        self._causes: dict[int, tuple[tuple[Any, ...], list[dict[str, Any]]]] = {}
        self._causes_float_free = True

    @property
    def float_free(self) -> bool:
        return self._causes_float_free and all(docs.float_free for _, docs in self._pairs.values())

    def doc(self, change: PairChange, endpoints: Mapping[ResourceId, Endpoint]) -> dict[str, Any]:
        """change_json(change, endpoints), sharing what repeats (`endpoints`: those of the change's topology)."""
        known = self._pairs.get(id(change.topology))
        if known is None:
            known = self._pairs[id(change.topology)] = (change.topology, _LazyPairDocs(change.topology, endpoints))
        doc = known[1].doc(change.pair)
        doc["status"] = "pending" if change.pending else "confirmed"
        causes = self._causes.get(id(change.causes))
        if causes is None:
            causes = self._causes[id(change.causes)] = (change.causes, [c.to_json() for c in change.causes])
            if self._causes_float_free and holds_float(causes[1]):
                self._causes_float_free = False
        doc["cause"] = list(causes[1])
        return doc


def diff_json(diff: Diff, *, warnings: Sequence[str] = ()) -> dict[str, Any]:
    cache: dict[int, Mapping[ResourceId, Endpoint]] = {}

    def eps(change: PairChange) -> Mapping[ResourceId, Endpoint]:
        if id(change.topology) not in cache:
            cache[id(change.topology)] = endpoints_of(change.topology)
        return cache[id(change.topology)]

    return {
        "opened": [change_json(c, eps(c)) for c in diff.opened],
        "closed": [change_json(c, eps(c)) for c in diff.closed],
        "groups": [
            {"cause": [c.to_json() for c in causes],
             "opened": [[ch.pair.a.value, ch.pair.b.value] for ch in opened],
             "closed": [[ch.pair.a.value, ch.pair.b.value] for ch in closed]}
            for causes, opened, closed in diff.groups()
        ],
        "warnings": list(warnings),
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[controls(c) for c in r] for r in rows]  # names are others' text: one cell stays on one line
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def _side(doc: dict[str, Any]) -> str:
    prefixes = ",".join(doc["addressPrefixes"]) or "?"
    return f"{doc['name']} ({prefixes}, sub {doc['subscription'][:8] or '?'})"


def _rows(pairs: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for p in pairs:
        a, b = p["endpoints"]
        circuits = ",".join(ResourceId.parse(c).name for c in p["circuits"])
        note = p["status"] + ("; " + "; ".join(p["warnings"]) if p["warnings"] else "")
        rows.append([_side(a), "<->", _side(b), circuits, note])
    return rows


PAIR_HEADERS = ("VNet A", "", "VNet B", "circuit", "status")


def pairs_table(doc: dict[str, Any], topology: Topology | None = None) -> str:
    pairs = doc["pairs"]
    out = [f"{len(pairs)} ER-transit pair(s)"]
    if pairs:
        out += _table(PAIR_HEADERS, _rows(pairs)).splitlines()
    if topology is not None:
        paired = {v.lower() for p in pairs for v in p["vnets"]}
        alone = sorted(v.name for v in topology.vnets.values() if v.present and v.id.key not in paired)
        if alone:
            shown = ", ".join(alone[:20]) + (f" and {len(alone) - 20} more" if len(alone) > 20 else "")
            out.append(f"VNets in no ER-transit pair: {shown}")
    out += [f"warning: {w}" for w in doc["warnings"]]
    return terminal_lines(out)


def diff_table(doc: dict[str, Any]) -> str:
    if not doc["opened"] and not doc["closed"]:
        return terminal_lines(["no ER-transit path opened or closed", *(f"warning: {w}" for w in doc["warnings"])])
    by_key = {tuple(p["vnets"]): p for p in doc["opened"] + doc["closed"]}
    out = [f"{len(doc['opened'])} opened, {len(doc['closed'])} closed"]
    for group in doc["groups"]:
        out.append("")
        out.append("cause: " + "; ".join(c["text"] for c in group["cause"]))
        for verb in ("opened", "closed"):
            if group[verb]:
                out.append(f"  {verb}:")
                table = _table(PAIR_HEADERS, _rows([by_key[tuple(k)] for k in group[verb]]))
                out += ["    " + line for line in table.splitlines()]
    out += [f"warning: {w}" for w in doc["warnings"]]
    return terminal_lines(out)
