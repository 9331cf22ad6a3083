"""Which pair changes a run may decide when some watched subscriptions were not read (pure, no I/O).

A whole-scope read can miss a subscription (no Reader, not found, throttled). The run decides every pair whose
resources it read and keeps every pair that touches a missed subscription at its committed status: it never opens
or closes a pair with an end, a gateway or a circuit on its path, or the ExpressRoute connection joining them, in
such a subscription. A subscription never read since the baseline is *baselined* by the first run that reads it:
the pairs that appear or vanish through it are recorded, not announced (they did not change; we had not seen them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from shared.core.focus import subscription_of, top_level_id
from shared.core.model import PairSet, TransitPair

JsonDict = dict[str, Any]

_CONNECTIONS = "microsoft.network/connections"


def merge_unread(live: Iterable[JsonDict], committed: Iterable[JsonDict], missed: Set[str]) -> list[JsonDict]:
    """The live resources of the subscriptions that were read, plus the committed copy of those that were not
    (`missed`: lower-case subscription ids)."""
    if not missed:
        return list(live)
    return ([r for r in live if subscription_of(str(r.get("id", ""))) not in missed]
            + [r for r in committed if subscription_of(str(r.get("id", ""))) in missed])


@dataclass(frozen=True, slots=True)
class Scope:
    """Subscriptions whose pairs a run must not decide. `subscriptions`: lower-case ids -> why; `linked`: lower-case
    ids of gateways outside them that an ExpressRoute connection inside them joins to a circuit."""

    subscriptions: Mapping[str, str] = field(default_factory=dict)
    linked: frozenset[str] = frozenset()

    @classmethod
    def of(cls, subscriptions: Mapping[str, str], resources: Iterable[Mapping[str, Any]]) -> Scope:
        subs = {s.lower(): why for s, why in subscriptions.items()}
        linked: set[str] = set()
        if subs:
            for r in resources:
                if str(r.get("type", "")).lower() != _CONNECTIONS or subscription_of(str(r.get("id", ""))) not in subs:
                    continue
                props = r.get("properties")
                props = props if isinstance(props, Mapping) else {}
                # The connection joins its gateway to a circuit: the gateway's routes depend on it (the circuit's
                # other gateways do not, so the circuit itself is not held).
                ref = props.get("virtualNetworkGateway1")
                ref_id = ref.get("id") if isinstance(ref, Mapping) else None
                top = top_level_id(ref_id) if isinstance(ref_id, str) else None
                if top is not None:
                    linked.add(top.lower())
        return cls(subs, frozenset(linked))

    def why(self, ids: Iterable[str]) -> str | None:
        """Why a pair with these resources (VNets, gateways, circuits) cannot be decided; None when it can."""
        if not self.subscriptions:
            return None
        for rid in ids:
            low = rid.lower()
            sub = subscription_of(low)
            if sub in self.subscriptions:
                return f"subscription {sub} was not read: {self.subscriptions[sub]}"
            if low in self.linked:
                return f"gateway {rid} is joined to a circuit by a connection in a subscription that was not read"
        return None


def doc_ids(doc: Mapping[str, Any]) -> list[str]:
    """The VNets, gateways and circuits an announced (or held) pair names."""
    return [str(v) for k in ("vnets", "gateways", "circuits") for v in (doc.get(k) or []) if isinstance(v, str)]


def pair_ids(pair: TransitPair) -> list[str]:
    return [pair.a.value, pair.b.value, *(c.value for c in pair.circuits), *(g.value for g in pair.gateways)]


def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
    a, b = doc["vnets"]
    return (str(a).lower(), str(b).lower())


def _unknown(causes: Any) -> bool:
    return not causes or all(isinstance(c, Mapping) and c.get("kind") == "unknown" for c in causes)


@dataclass(frozen=True, slots=True)
class Covered:
    opened: list[JsonDict]
    closed: list[JsonDict]
    pending: list[JsonDict]
    deviations: list[JsonDict]  # the committed set's deviations (see auditor.committed_pair_ids), sorted
    held: list[JsonDict]  # {"vnets", "direction", "why"} per change kept at its committed status
    baselined: int  # changes through a subscription read for the first time: recorded, not announced


def _held_deviation(doc: Mapping[str, Any], delta: str, why: str, earlier: Mapping[str, Any] | None,
                    now: str) -> JsonDict:
    """The committed status of a held pair, with what is known of its change for when it is announced."""
    cause = doc.get("cause")
    if _unknown(cause) and earlier is not None and earlier.get("cause"):
        cause = earlier["cause"]
    out: JsonDict = {"vnets": list(doc["vnets"]), "delta": delta, "held": why,
                     "heldSince": (earlier or {}).get("heldSince") or now}
    for k in ("gateways", "circuits"):
        if doc.get(k):
            out[k] = list(doc[k])
    if cause:
        out["cause"] = cause
    return out


def cover(opened: Sequence[JsonDict], closed: Sequence[JsonDict], pending: Sequence[JsonDict],
          deviations: Sequence[JsonDict], *, committed: Sequence[JsonDict], hold: Scope, baseline: Scope,
          now: str) -> Covered:
    """Keep the changes that touch `hold` at their committed status, record those that touch `baseline` silently,
    and pass the rest. `deviations`: the decision's; `committed`: the committed state's (a held pair's earlier
    record supplies the cause when it is announced at last)."""
    earlier = {_key(d): d for d in committed if d.get("held")}
    out = {_key(d): dict(d) for d in deviations}
    held: list[JsonDict] = []
    baselined = 0

    def place(doc: JsonDict, direction: str) -> bool:
        """True when the change is taken out of the announced lists."""
        nonlocal baselined
        key = _key(doc)
        why = hold.why(doc_ids(doc))
        if why is not None:
            out[key] = _held_deviation(doc, "-" if direction == "opened" else "+", why, earlier.get(key), now)
            held.append({"vnets": list(doc["vnets"]), "direction": direction, "why": why})
            return True
        if baseline.why(doc_ids(doc)) is not None:
            baselined += 1
            if not (direction == "opened" and doc.get("direction") == "opened"):
                out.pop(key, None)  # committed (opened) or dropped (closed) silently; a settling opening waits
            return True
        return False

    kept_opened, kept_closed, kept_pending = [], [], []
    for doc in opened:
        if not place(doc, "opened"):
            kept_opened.append(_announced(doc, earlier))
    for doc in closed:
        if not place(doc, "closed"):
            kept_closed.append(_announced(doc, earlier))
    for doc in pending:
        if not place(doc, str(doc.get("direction") or "opened")):
            kept_pending.append(doc)
    return Covered(kept_opened, kept_closed, kept_pending, [out[k] for k in sorted(out)], held, baselined)


def _announced(doc: JsonDict, earlier: Mapping[tuple[str, str], Mapping[str, Any]]) -> JsonDict:
    """A change announced at last after being held: the cause recorded when it happened, not "unknown"."""
    held = earlier.get(_key(doc))
    if held is None and "held" not in doc:
        return doc
    doc = {k: v for k, v in doc.items() if k not in ("held", "heldSince")}
    if held is not None and _unknown(doc.get("cause")) and held.get("cause"):
        doc["cause"] = held["cause"]
    return doc


def baseline_held(pairs: PairSet, deviations: Sequence[JsonDict], hold: Scope, now: str) -> tuple[list[JsonDict],
                                                                                                 list[JsonDict]]:
    """A baseline taken while subscriptions are unread commits none of the pairs that touch them (so reading them
    later cannot look like a closure): (the deviations with those pairs left uncommitted, what was held)."""
    out = {_key(d): d for d in deviations}
    held: list[JsonDict] = []
    if hold.subscriptions:
        for key, pair in pairs.pairs.items():
            why = hold.why(pair_ids(pair))
            if why is not None:
                doc = {"vnets": [pair.a.value, pair.b.value], "gateways": [g.value for g in pair.gateways],
                       "circuits": [c.value for c in pair.circuits]}
                out[key] = _held_deviation(doc, "-", why, None, now)
                held.append({"vnets": doc["vnets"], "direction": "opened", "why": why})
    return [out[k] for k in sorted(out)], held
