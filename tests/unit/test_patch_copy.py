"""patch_copy (bisection on the sorted working copy) gives what the plain reading gives: drop the read's resources
and their children, add what it read, keep the copy sorted; None when the read changes nothing."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.focus import FocusedRead, patch_copy, project

PREFIX = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/"
NAMES = ["v1", "v1-b", "v1.x", "V1", "v10", "v2", "v1_c"]


def resource(rid: str, flag: bool = False) -> dict[str, Any]:
    return {"id": rid, "type": "microsoft.network/virtualnetworks" if rid.count("/") == 8 else
            "microsoft.network/virtualnetworks/virtualnetworkpeerings",
            "properties": {"provisioningState": "Succeeded", "addressSpace": {"addressPrefixes": [str(flag)]}}}


def reference(copy_: list[dict[str, Any]], read: FocusedRead) -> list[dict[str, Any]] | None:
    drop = tuple(r.lower().rstrip("/") for r in read.replace)

    def dropped(rid: str) -> bool:
        key = rid.lower()
        return any(key == d or key.startswith(d + "/") for d in drop)

    def by_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda r: str(r.get("id", "")).lower())

    kept = [r for r in copy_ if not dropped(r["id"])]
    removed = [r for r in copy_ if dropped(r["id"])]
    added = project(read.resources)
    return None if by_id(removed) == by_id(added) else by_id(kept + added)


ids = st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([PREFIX + n, PREFIX + n + "/virtualNetworkPeerings/p",
                                                                 PREFIX + n + "/virtualNetworkPeerings/q"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(ids, unique_by=str.lower, max_size=12), st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
       st.lists(st.tuples(ids, st.booleans()), max_size=4), st.booleans())
def test_the_patch_equals_the_plain_reading(present: list[str], replace: list[str],
                                            read: list[tuple[str, bool]], shuffled: bool) -> None:
    working = sorted(project([resource(r) for r in present]), key=lambda r: r["id"].lower())
    if shuffled:  # a copy out of order (an older version's) takes the plain path
        random.Random(len(present)).shuffle(working)
    got = FocusedRead(replace=tuple(PREFIX + n for n in replace),
                      resources=tuple(resource(r, flag) for r, flag in {r.lower(): (r, f) for r, f in read}.values()),
                      calls=1)
    expected = reference(copy.deepcopy(working), got)
    assert patch_copy(working, got) == expected
