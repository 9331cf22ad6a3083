"""Local HTTP stand-ins for Slack incoming webhooks and Teams Workflows webhooks that refuse what they refuse.

Limits and answers (../shared/DOMAIN.md section 6):
- Slack: at most 50 blocks, a section's text at most 3,000 characters, a header at most 150, at most 10 fields of
  2,000 (Block Kit reference) -> 400 `invalid_blocks`; about 12,000-13,000 characters of text summed over all
  blocks -> 400 `msg_blocks_too_long` (slackapi/bolt-js issues 2509 and 2867; we refuse above 12,000); a body that
  is not JSON -> 400 `invalid_payload`; no text and no blocks -> 400 `no_text`; a revoked webhook -> 404
  `no_service`; over about one message a second -> 429 with Retry-After (Slack rate limits).
- Teams Workflows: a post over about 28 KB -> 413 "Request entity too large"; a body that is not JSON -> 400;
  otherwise 202 Accepted (the flow runs afterwards, and may still fail unseen); a deleted or turned-off flow -> 404.
Time is the injected clock's (tests simulate hours without sleeping).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.adapters.notify import slack

SLACK_MAX_TOTAL_TEXT = 12000
TEAMS_MAX_BYTES = 28 * 1024


@dataclass
class Post:
    at: float
    status: int
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class ChatService:
    """One webhook of `kind` ("slack" or "teams") on 127.0.0.1; `mode` scripts an outage, a storm or a revocation."""

    kind: str
    clock: Callable[[], float]
    mode: str = "ok"  # ok | down (503) | throttle (429, Retry-After) | revoked
    retry_after: int = 30
    max_total_text: int = SLACK_MAX_TOTAL_TEXT  # tests may lower it, as Slack's undocumented limit may be lower
    max_bytes: int = TEAMS_MAX_BYTES
    refuse_all_shapes: bool = False  # Slack: refuse every body as malformed blocks (even a minimal one)
    # Called with each post's body before it is answered (a test lets simulated time pass, or looks at the store);
    # an answer it returns replaces the service's own (a scripted flaky service).
    on_post: Callable[[bytes], tuple[int, str, dict[str, str]] | None] | None = None
    posts: list[Post] = field(default_factory=list)

    def __post_init__(self) -> None:
        service = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                scripted = service.on_post(body) if service.on_post is not None else None
                status, text, headers = scripted or service.answer(body)
                with service._lock:
                    service.posts.append(Post(service.clock(), status, body))
                data = text.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        path = "/services/T000/B000/SECRETxyz" if self.kind == "slack" else \
            "/workflows/4f1e/triggers/manual/paths/invoke?api-version=1&sig=SECRETsig0123456789"
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def accepted(self) -> list[Any]:
        return [p.json for p in self.posts if p.accepted]

    def answer(self, body: bytes) -> tuple[int, str, dict[str, str]]:
        if self.mode == "down":
            return 503, "Service Unavailable", {}
        if self.mode == "throttle":
            return 429, "rate_limited" if self.kind == "slack" else "", {"Retry-After": str(self.retry_after)}
        if self.mode == "revoked":
            return (404, "no_service", {}) if self.kind == "slack" else (
                404, '{"error":{"code":"WorkflowNotFound","message":"The workflow was not found."}}', {})
        return self._slack(body) if self.kind == "slack" else self._teams(body)

    def _slack(self, body: bytes) -> tuple[int, str, dict[str, str]]:
        try:
            doc = json.loads(body)
        except ValueError:
            return 400, "invalid_payload", {}
        if not isinstance(doc, dict) or not (doc.get("text") or doc.get("blocks")):
            return 400, "no_text", {}
        blocks = doc.get("blocks") or []
        if self.refuse_all_shapes:
            return 400, "invalid_blocks", {}
        bad = len(blocks) > 50 or any(
            (b.get("type") == "header" and len(b["text"]["text"]) > 150)
            or len((b.get("text") or {}).get("text", "")) > 3000
            or len(b.get("fields", [])) > 10 or any(len(f.get("text", "")) > 2000 for f in b.get("fields", []))
            for b in blocks)
        if bad:
            return 400, "invalid_blocks", {}
        if sum(len(t) for b in blocks for t in slack.block_texts(b)) > self.max_total_text:
            return 400, "msg_blocks_too_long", {}
        return 200, "ok", {}

    def _teams(self, body: bytes) -> tuple[int, str, dict[str, str]]:
        if len(body) > self.max_bytes:
            return 413, '{"error":{"code":"RequestEntityTooLarge","message":"Request entity too large"}}', {}
        try:
            json.loads(body)
        except ValueError:
            return 400, '{"error":{"code":"InvalidRequestContent","message":"not valid JSON"}}', {}
        # A card the flow cannot post still gets 202: the flow fails afterwards, unseen by the sender.
        return 202, "", {}
