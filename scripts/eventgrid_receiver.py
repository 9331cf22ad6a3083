"""A local stand-in for an Event Grid custom topic (CloudEvents 1.0 input schema) over HTTPS on 127.0.0.1.

It refuses what the service refuses, with the service's status codes and error body shape:
- path `/api/events` with an `api-version` query (else 404 / 400);
- `aeg-sas-key: <key>` or `Authorization: Bearer <token>` (else 401);
- content type `application/cloudevents-batch+json; charset=utf-8` (a topic with the CloudEvents schema takes a
  batch as a JSON array; else 400);
- at most 1 MB per request and per event (else 413 Payload Too Large);
- every event an object with the required CloudEvents attributes `id`, `source`, `type`, `specversion` "1.0"
  (else 400, and nothing of the batch is accepted).
Sources: https://learn.microsoft.com/azure/event-grid/post-to-custom-topic (endpoint, `aeg-sas-key`, status codes
400/401/404/413 and the `{"error": {"code", "message", "details"}}` body), .../event-grid/cloud-event-schema and
.../event-grid/event-schema (1 MB per array and per event, 413), https://github.com/cloudevents/spec (v1.0
required attributes).

Run it by hand (prints the settings to export; the TLS certificate comes from trustme, a dev dependency):
    .venv/bin/python scripts/eventgrid_receiver.py [PORT] [--key KEY]
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

PATH = "/api/events"
CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
MAX_BYTES = 1024 * 1024  # 1 MB per request (the array) and per event; both answered with 413
REQUIRED = ("id", "source", "type", "specversion")


@dataclass
class Seen:
    """One request as the receiver judged it (no secrets: the auth kind, never the key or token)."""

    status: int
    auth: str  # "key" | "bearer" | "none" | "wrong"
    content_type: str
    size: int
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


class EventGridReceiver:
    """Start with `start()` or `with`; `endpoint` and `ca_pem` are what a publisher needs."""

    def __init__(self, *, key: str | None = "local-topic-key", tokens: Iterable[str] = (), port: int = 0,
                 local_auth: bool = True) -> None:
        self.key = key
        self.local_auth = local_auth  # False: like a topic with disableLocalAuth, keys are refused (Entra only)
        self.tokens = set(tokens)
        self.accepted: list[dict[str, Any]] = []  # every event of every accepted request, in arrival order
        self.requests: list[Seen] = []
        self.echo = False  # print every accepted event (when run by hand)
        self._outage: list[int | None] = []  # what to answer next (None: judge normally), one per request
        self._down_forever: int | None = None
        self._lock = threading.Lock()
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        folder = Path(tempfile.mkdtemp(prefix="eventgrid-receiver-"))
        self.ca_pem = str(folder / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.receiver = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}{PATH}"

    def start(self) -> EventGridReceiver:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="eventgrid-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> EventGridReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, *statuses: int | None) -> None:
        """Answer the next requests with these statuses (503, 429, ...), whatever they hold; None: judge it."""
        with self._lock:
            self._outage.extend(statuses)

    def go_down(self, status: int = 503) -> None:
        with self._lock:
            self._down_forever = status

    def come_back(self) -> None:
        with self._lock:
            self._down_forever = None
            self._outage.clear()

    def accepted_ids(self) -> list[str]:
        return [str(e.get("id")) for e in self.accepted]

    # -- judging one request (the service's rules) -------------------------------------------------------------
    def judge(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any] | None, Seen]:
        auth = self._auth(headers)
        content_type = str(headers.get("Content-Type") or "")
        seen = Seen(status=200, auth=auth, content_type=content_type, size=len(body))
        with self._lock:
            injected = self._outage.pop(0) if self._outage else self._down_forever
        if injected is not None:
            return self._refuse(seen, injected, "ServiceUnavailable" if injected >= 500 else "TooManyRequests",
                                "The service is unavailable; try again later.")
        parts = urlsplit(path)
        if parts.path.rstrip("/") != PATH:
            return self._refuse(seen, 404, "NotFound", f"The path {parts.path!r} does not exist on this topic.")
        if not parse_qs(parts.query).get("api-version"):
            return self._refuse(seen, 400, "BadRequest", "The api-version query parameter is required.")
        if auth in ("none", "wrong"):
            return self._refuse(seen, 401, "Unauthorized",
                                "The request authorization key is not authorized for this topic."
                                if auth == "wrong" else "The request has no aeg-sas-key or Authorization header.")
        if len(body) > MAX_BYTES:
            return self._refuse(seen, 413, "PayloadTooLarge",
                                f"The request is {len(body)} bytes; the maximum is {MAX_BYTES} bytes.")
        if _media(content_type) != _media(CONTENT_TYPE):
            return self._refuse(seen, 400, "BadRequest",
                                f"Unsupported content type {content_type!r}; a CloudEvents batch is {CONTENT_TYPE!r}.")
        try:
            events = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return self._refuse(seen, 400, "BadRequest", f"The request body is not JSON ({type(exc).__name__}).")
        if not isinstance(events, list):
            return self._refuse(seen, 400, "BadRequest", "A CloudEvents batch must be a JSON array.")
        for index, event in enumerate(events):
            problem = _event_problem(event)
            if problem:
                return self._refuse(seen, 400, "BadRequest", f"Event at index {index}: {problem}")
            size = len(json.dumps(event).encode("utf-8"))
            if size > MAX_BYTES:
                return self._refuse(seen, 413, "PayloadTooLarge",
                                    f"Event at index {index} is {size} bytes; the maximum is {MAX_BYTES} bytes.")
        seen.events = events
        with self._lock:
            self.accepted.extend(events)
        return 200, None, seen

    def _auth(self, headers: Any) -> str:
        key = headers.get("aeg-sas-key")
        bearer = str(headers.get("Authorization") or "")
        if key is not None:
            return "key" if self.local_auth and self.key is not None and key == self.key else "wrong"
        if bearer.lower().startswith("bearer "):
            return "bearer" if bearer[7:].strip() in self.tokens else "wrong"
        return "none"

    @staticmethod
    def _refuse(seen: Seen, status: int, code: str, message: str) -> tuple[int, dict[str, Any], Seen]:
        seen.status, seen.error = status, message
        body = {"error": {"code": code, "message": message, "details": [{"code": code, "message": message}]}}
        return status, body, seen


def _media(content_type: str) -> tuple[str, str]:
    """(media type, charset), lower case: parameters compare case-insensitively."""
    media, _, rest = content_type.partition(";")
    params = {k.strip().lower(): v.strip().strip('"').lower()
              for k, _, v in (p.partition("=") for p in rest.split(";")) if k.strip()}
    return media.strip().lower(), params.get("charset", "")


def _event_problem(event: Any) -> str:
    if not isinstance(event, dict):
        return "an event must be a JSON object."
    for name in REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            return f"required attribute '{name}' is missing or not a non-empty string."
    if event["specversion"] != "1.0":
        return f"specversion {event['specversion']!r} is not supported; use '1.0'."
    if "data" in event and "data_base64" in event:
        return "an event has either 'data' or 'data_base64', not both."
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_POST(self) -> None:  # noqa: N802 - the base class names it so
        receiver: EventGridReceiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status, error, seen = receiver.judge(self.path, self.headers, body)
        with receiver._lock:
            receiver.requests.append(seen)
        payload = json.dumps(error).encode("utf-8") if error else b""
        self.send_response(status)
        if error:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            if status in (429, 503):
                self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if receiver.echo and status == 200:
            for event in seen.events:
                print(json.dumps(event, indent=2, ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=8766)
    parser.add_argument("--key", default="local-topic-key", help="the aeg-sas-key to accept")
    args = parser.parse_args(argv)
    receiver = EventGridReceiver(key=args.key, port=args.port)
    receiver.echo = True
    receiver.start()
    print(f"Event Grid stand-in listening on {receiver.endpoint} (Ctrl-C to stop). In another shell:\n"
          f"  export EVENTGRID_TOPIC_ENDPOINT={receiver.endpoint} EVENTGRID_TOPIC_KEY={args.key} "
          f"REQUESTS_CA_BUNDLE={receiver.ca_pem}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
