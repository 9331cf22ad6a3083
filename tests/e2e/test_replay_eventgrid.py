"""`replay` publishing to the local Event Grid stand-in, as the README shows: the settings in the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.eventgrid_receiver import EventGridReceiver

ROOT = Path(__file__).resolve().parents[2]
KEY = "local-topic-key"


def test_replay_publishes_one_event_per_announced_pair_to_the_stand_in(tmp_path: Path) -> None:
    with EventGridReceiver(key=KEY) as topic:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "EVENTGRID_TOPIC_ENDPOINT": topic.endpoint,
               "EVENTGRID_TOPIC_KEY": KEY, "REQUESTS_CA_BUNDLE": topic.ca_pem}
        done = subprocess.run([sys.executable, "-m", "shared.cli", "replay", "examples/replay-lab", "--store",
                               str(tmp_path), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                              env=env)
        assert done.returncode == 0, done.stderr
        steps = [json.loads(line) for line in done.stdout.splitlines()]
        announced = [(d, tuple(p["vnets"])) for s in steps for d in ("opened", "closed") for p in s[d]]
        got = [(e["data"]["direction"], tuple(e["data"]["pair"]["vnets"])) for e in topic.accepted]
        assert sorted(got) == sorted(announced) and len(got) == 5  # 1 + 2 opened, 2 closed; the duplicate none
        assert len(set(topic.accepted_ids())) == len(got)
        assert {e["type"] for e in topic.accepted} == {"ErTransit.PairOpened", "ErTransit.PairClosed"}
        assert all(r.auth == "key" and r.status == 200 for r in topic.requests)
        assert KEY not in done.stderr and KEY not in done.stdout
