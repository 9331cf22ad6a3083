"""function_app.py indexes as the host would see it: four functions, the right triggers and settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INDEX = """
import json, function_app
out = {}
for f in function_app.app.get_functions():
    out[f.get_function_name()] = [json.loads(b) if isinstance(b, str) else b for b in f.get_raw_bindings()]
print(json.dumps(out))
"""


def index(env: dict[str, str]) -> dict[str, list[dict]]:
    done = subprocess.run([sys.executable, "-c", INDEX], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_four_functions_with_their_triggers_and_defaults() -> None:
    functions = index({})
    assert set(functions) == {"on_resource_event", "reconcile", "recheck", "warmup"}
    [warm] = functions["warmup"]  # the host calls it only when named "warmup" (Microsoft Learn, warmup trigger)
    assert warm["type"] == "warmupTrigger" and warm["direction"] == "IN"
    [event] = functions["on_resource_event"]
    assert event["type"] == "eventGridTrigger" and event["direction"] == "IN"
    [timer] = functions["reconcile"]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 */15 * * * *"
    [queue] = functions["recheck"]
    assert queue["type"] == "queueTrigger" and queue["queueName"] == "er-transit-recheck"
    assert queue["connection"] == "AuditorStorage"


def test_schedule_and_queue_come_from_the_app_settings() -> None:
    functions = index({"RECONCILE_SCHEDULE": "0 */5 * * * *", "RECHECK_QUEUE": "other-queue"})
    assert functions["reconcile"][0]["schedule"] == "0 */5 * * * *"
    assert functions["recheck"][0]["queueName"] == "other-queue"


def test_importing_the_app_builds_no_client_and_needs_no_setting() -> None:
    done = subprocess.run([sys.executable, "-c", "import function_app, sys; "
                           "print(sorted(m for m in sys.modules if m.startswith(('azure.identity', "
                           "'azure.storage', 'azure.mgmt', 'requests'))))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_warmup_parameter_is_the_type_the_worker_converts() -> None:
    # The Python worker refuses to load a function whose parameter annotation its converter does not accept.
    code = ("import inspect, function_app\n"
            "from azure.functions.warmup import WarmUpTriggerConverter\n"
            "[f] = [f for f in function_app.app.get_functions() if f.get_function_name() == 'warmup']\n"
            "hint = inspect.signature(f.get_user_function()).parameters['warmup'].annotation\n"
            "print(WarmUpTriggerConverter.check_input_type_annotation(hint))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
