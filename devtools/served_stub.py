"""A scripted OpenAI-style HTTP server on loopback, for what a real serving engine cannot be
made to do on demand: answer 429 or 503, stall past a timeout, drop a connection, send a
broken body. It is a real HTTP server (the client under test speaks real HTTP to it); only its
answers are scripted. It can also forward to a real server, as a flaky proxy in front of it.

Each behaviour is a tuple: ("ok", text[, finish_reason[, extra choice fields]]),
("status", code[, retry_after]), ("sleep", seconds, then_behaviour), ("hold", event,
then_behaviour), ("drop",), ("garbage",), ("forward",). When the script runs out, `default`
answers. "hold" answers once the threading.Event is set (or the server closes, which sets it), so
a test decides when an answer comes instead of guessing how long something else takes.

A request with "stream": true gets "ok" as server-sent events, a word a chunk, with the token
counts last when asked for (`stream_usage`). Failures once the answer has begun:
("cut", text) sends half the words and drops the connection; ("stall", text, seconds or event)
sends half and falls silent (for that long, or until the Event is set); ("stream_error", text,
message) sends half and then an error event; ("bad_event", text) sends half and then an event
that is not JSON.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOLD_LIMIT_S = 300.0  # a held answer goes out after this at the latest: a guard against a hang


class StubServer:
    def __init__(
        self,
        script: list[tuple] | None = None,
        *,
        default: tuple | Callable[[dict[str, Any]], tuple] = ("ok", "a summary"),
        upstream: str | None = None,
        models: list[str] | None = None,
        stream_usage: bool = True,
        streams: bool = True,
    ) -> None:
        self.script = list(script or [])
        self.default = default
        self.upstream = upstream  # base URL to forward to, e.g. http://127.0.0.1:8000
        self.models = models  # what GET /v1/models lists; None: no such route (404)
        self.stream_usage = stream_usage  # False: like llama.cpp, no token counts in a stream
        self.streams = streams  # False: "stream": true is ignored and the answer comes whole
        self.requests: list[dict[str, Any]] = []  # {"path", "body", "headers"}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._held: list[threading.Event] = []  # set on close: no handler outlives the server
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for event in self._held:
                event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _pause(self, until: float | threading.Event) -> None:
        if isinstance(until, threading.Event):
            with self._lock:
                self._held.append(until)
            until.wait(HOLD_LIMIT_S)
        else:
            time.sleep(until)

    def _next(self, body: dict[str, Any]) -> tuple:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        return self.default(body) if callable(self.default) else self.default

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/v1/models" and stub.models is not None:
                    listing = [{"id": name, "object": "model"} for name in stub.models]
                    return self._send(200, {"object": "list", "data": listing})
                return self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                with stub._lock:
                    stub.requests.append(
                        {"path": self.path, "body": body, "headers": dict(self.headers)}
                    )
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    self._answer(stub._next(body), body, raw)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _answer(self, behaviour: tuple, body: dict[str, Any], raw: bytes) -> None:
                kind = behaviour[0]
                if kind in ("sleep", "hold"):
                    stub._pause(behaviour[1])
                    return self._answer(behaviour[2], body, raw)
                if kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return None
                if kind == "status":
                    headers = {"Retry-After": str(behaviour[2])} if len(behaviour) > 2 else {}
                    return self._send(behaviour[1], {"error": {"message": "scripted"}}, headers)
                if kind == "garbage":
                    return self._send(200, None, raw_text=b"<html>not json</html>")
                if kind == "forward":
                    headers = {"Content-Type": "application/json"}
                    if "Authorization" in self.headers:
                        headers["Authorization"] = self.headers["Authorization"]
                    path = self.path.removeprefix("/v1")
                    reply = httpx.post(
                        f"{stub.upstream}/v1{path}", content=raw, headers=headers, timeout=300
                    )
                    return self._send(reply.status_code, None, raw_text=reply.content)
                if body.get("stream") and stub.streams:
                    return self._stream(behaviour, body)
                text = behaviour[1]
                finish = behaviour[2] if len(behaviour) > 2 else "stop"
                extra = behaviour[3] if len(behaviour) > 3 else {}
                if "messages" in body:
                    choice = {"message": {"role": "assistant", "content": text}}
                else:
                    choice = {"text": text}
                choice.update(index=0, finish_reason=finish, **extra)
                usage = {"prompt_tokens": 7, "completion_tokens": len(text.split())}
                return self._send(200, {"choices": [choice], "usage": usage})

            def _stream(self, behaviour: tuple, body: dict[str, Any]) -> None:
                kind, text = behaviour[0], behaviour[1]
                words = [w + " " for w in text.split(" ")]
                words[-1] = words[-1][:-1]
                if kind != "ok":
                    words = words[: len(words) // 2]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                chat = "messages" in body

                def event(payload: Any) -> None:
                    data = payload if isinstance(payload, str) else json.dumps(payload)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()

                def chunk(piece: str | None, finish: str | None = None, **extra: Any) -> None:
                    choice = {"delta": {"content": piece}} if chat else {"text": piece}
                    event({"choices": [{"index": 0, "finish_reason": finish, **choice, **extra}]})

                for word in words:
                    chunk(word)
                if kind == "cut":
                    self.connection.shutdown(2)
                    return
                if kind == "stall":
                    stub._pause(behaviour[2])
                    return
                if kind == "bad_event":
                    event("{not json")
                    return
                if kind == "stream_error":
                    event({"error": {"message": behaviour[2]}})
                    return
                extra = behaviour[3] if len(behaviour) > 3 else {}
                chunk("", behaviour[2] if len(behaviour) > 2 else "stop", **extra)
                asked = (body.get("stream_options") or {}).get("include_usage")
                if asked and stub.stream_usage:
                    usage = {"prompt_tokens": 7, "completion_tokens": len(text.split())}
                    event({"choices": [], "usage": usage})
                event("[DONE]")

            def _send(self, status, payload, headers=None, raw_text: bytes | None = None):
                data = raw_text if raw_text is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
