"""Azure Functions entry points (v2 programming model): wiring only; the work is in shared/."""

import logging
import os

import azure.functions as func

from shared import entrypoints

app = func.FunctionApp()

# Binding settings are fixed when the host indexes the app (an app-setting change restarts it anyway); the
# defaults keep the app indexable when a setting is missing.
RECONCILE_SCHEDULE = os.environ.get("RECONCILE_SCHEDULE") or "0 */15 * * * *"
RECHECK_QUEUE = os.environ.get("RECHECK_QUEUE") or "er-transit-recheck"


@app.function_name("on_resource_event")
@app.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    entrypoints.handle_event(event)


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False, use_monitor=True)
def reconcile(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger(__name__).info("reconcile is past due; running now")
    entrypoints.handle_reconcile()


@app.function_name("recheck")
@app.queue_trigger(arg_name="message", queue_name=RECHECK_QUEUE, connection="AuditorStorage")
def recheck(message: func.QueueMessage) -> None:
    try:
        body = message.get_json()
    except ValueError:
        body = None
    entrypoints.handle_recheck(body if isinstance(body, dict) else None)


# Called when the platform adds an instance (scale-out; not on restarts): the instance loads its working copy
# before it takes events, so its first event costs what a warm one does. The function must be named "warmup".
@app.function_name("warmup")
@app.warm_up_trigger(arg_name="warmup")
def warmup(warmup: func.warmup.WarmUpContext) -> None:
    entrypoints.handle_warmup()
