"""Real loopback endpoints for the teacher client's failure paths, which a working model server cannot be
made to produce on demand: a chat-completions server that answers what a test scripts (HTTP errors,
garbage, an off-scale rating), a socket that accepts and hangs up, one that accepts and never answers.
Each counts the requests (or connections) it saw, so tests can assert exactly how many were made."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content: str) -> dict:
    """An OpenAI chat-completion body whose message says `content`."""
    return {
        "id": "cmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": "loopback",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
    }


class ScriptedChatServer:
    """Answers POST /v1/chat/completions with `replies` in order (the last one repeats): each a
    (status, body) pair. `requests` holds every request body received."""

    def __init__(self, replies: list[tuple[int, dict | str]]):
        self.replies = replies
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append(json.loads(body or b"{}"))
                status, reply = server.replies[min(len(server.requests), len(server.replies)) - 1]
                data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedChatServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def counting_socket(hang: bool = False) -> Iterator[tuple[str, list[int]]]:
    """A listening loopback socket that accepts every connection and closes it at once without a word
    (or, with `hang=True`, keeps it open and never answers: a hung endpoint). Yields (base_url,
    [connections seen])."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    seen = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen[0] += 1
            held.append(conn)
            if not hang:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", seen
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for conn in held:
            conn.close()


def closed_port_url() -> str:
    """A loopback URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
