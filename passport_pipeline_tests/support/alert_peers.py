"""Real peers for the alert channels, on 127.0.0.1 and a free port, inside the test process.

    with SmtpServer(port=..., users={"ops": "pw"}) as smtp:   # aiosmtpd's SMTP server
        ...; smtp.messages  # email.message.EmailMessage, as received
    with SlackServer(fail_first=2) as slack:                  # Slack's webhook and Web API
        ...; slack.posts  # (path, JSON body) of every POST, answered or not

``SlackServer`` answers ``POST /services/...`` as an incoming webhook does (200, ``ok``) and
``POST /api/chat.postMessage`` as Slack's Web API does (``{"ok": true, ...}``, the bot token
checked); the first ``fail_first`` posts get a 503.
"""

from __future__ import annotations

import asyncio
import email
import json
import threading
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class SmtpServer:
    """aiosmtpd's SMTP server in a thread with its own event loop; keeps every message."""

    def __init__(self, port: int = 0, users: dict[str, str] | None = None):
        self.port = port
        self.users = users
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    def _smtp(self) -> SMTP:
        if self.users is None:
            return SMTP(self, hostname="127.0.0.1")
        # Login without TLS, allowed on loopback only (as settings/alerts.py allows it).
        return SMTP(
            self,
            hostname="127.0.0.1",
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,
        )

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        created = self._loop.create_server(self._smtp, "127.0.0.1", self.port)
        self._server = asyncio.run_coroutine_threadsafe(created, self._loop).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        self._server.close()
        closed = asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop)
        closed.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class SlackServer:
    """Slack's incoming webhook and ``chat.postMessage``, answered in a thread."""

    def __init__(self, token: str = "xoxb-test-token", fail_first: int = 0):
        self.token = token
        self.fail_first = fail_first
        self.posts: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/services/T000/B000/test-webhook-secret"

    @property
    def texts(self) -> list[str]:
        """The text of every post that was answered with success."""
        return [body["text"] for _, body in self.posts[self.fail_first :]]

    def _answer(self, path: str, headers, body: dict) -> tuple[int, str, str]:
        with self._lock:
            self.posts.append((path, body))
            failing = len(self.posts) <= self.fail_first
        if failing:
            return 503, "text/plain", "service_unavailable"
        if path.startswith("/services/"):
            return 200, "text/plain", "ok"
        if path == "/api/chat.postMessage":
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 200, "application/json", json.dumps({"ok": False, "error": "invalid_auth"})
            answer = {"ok": True, "channel": body.get("channel"), "ts": "1700000000.000100"}
            return 200, "application/json", json.dumps(answer)
        return 404, "text/plain", "no_service"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:  # the Web API may post a form
                    from urllib.parse import parse_qsl

                    body = dict(parse_qsl(raw.decode()))
                status, content_type, text = server._answer(self.path, self.headers, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler

    def __enter__(self) -> SlackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)
