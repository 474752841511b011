"""A fake AWS federation (console sign-in) endpoint on 127.0.0.1, in a thread.

    with FakeFederation() as fed:
        env["ELEVATE_FEDERATION_URL"] = fed.url
        fed.behave(status=500)              # or body=b"...", delay=2.0, redirect="http://..."
        assert fed.requests[-1]["Action"] == "getSigninToken"

It answers Action=getSigninToken with {"SigninToken": <random>}, keeps every request's
query parameters, and remembers the tokens it handed out (for leak checks).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional
from urllib.parse import parse_qsl, urlsplit

from support.fakests import LoopbackServer, QuietHandler


@dataclass
class Behaviour:
    status: int = 200
    body: Optional[bytes] = None
    delay: float = 0.0
    redirect: Optional[str] = None


class FakeFederation:
    """The fake endpoint; use as a context manager (it starts and stops its thread)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.tokens: list[str] = []
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._handle(self)

        self._server = LoopbackServer(Handler)

    def __enter__(self) -> FakeFederation:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.origin + "/federation"

    def behave(self, **settings: Any) -> None:
        self.behaviour = Behaviour(**settings)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append({"_path": parts.path, **params})
        behaviour = self.behaviour
        if behaviour.delay:
            time.sleep(behaviour.delay)
        if behaviour.redirect:
            handler.send_response(302)
            handler.send_header("Location", behaviour.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if behaviour.body is not None:
            body = behaviour.body
        elif params.get("Action") == "getSigninToken" and params.get("Session"):
            token = secrets.token_urlsafe(300)
            with self._lock:
                self.tokens.append(token)
            body = json.dumps({"SigninToken": token}).encode()
        else:
            handler.send_response(400)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(behaviour.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except OSError:
            pass
