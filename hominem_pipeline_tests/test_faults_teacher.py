"""Teacher faults against a real HTTP server on loopback (a raw socket server in a thread, so it can
misbehave the way real servers do): malformed output, HTTP 500, a hang past the timeout and an answer
trickled a byte at a time. Each item is abandoned within its time bound, every failure is recorded in
`label_failures` with its reason and the number of requests the server really saw, and no label is
invented for it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from hominem_pipeline.data.labels import label_id, label_trajectories
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT, TeacherConfig
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.teacher.openai_backend import OpenAITeacher
from hominem_pipeline_tests.loopback_http import completion

pytestmark = pytest.mark.faults

MODES = ("good", "malformed", "http500", "hang", "trickle")


class FaultyServer:
    """Speaks just enough HTTP/1.1 to answer chat completions; how it answers depends on which mode word
    the request mentions. Counts requests per mode and notes trickles the client walked away from."""

    def __init__(self, good_reply: str):
        self.good_reply = good_reply
        self.requests: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> FaultyServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._held:
            conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        return body

    def _handle(self, conn: socket.socket) -> None:
        body = self._read_request(conn).decode()
        mode = next((m for m in MODES if f"MODE-{m}" in body), "good")
        self.requests[mode] += 1
        if mode == "hang":
            self._held.append(conn)  # never answers, never closes
            return
        status, payload = {
            "good": (200, json.dumps(completion(self.good_reply))),
            "malformed": (200, json.dumps(completion("Sure! I would rate it quite empathetic, maybe 4ish."))),
            "http500": (500, json.dumps({"error": {"message": "model crashed"}})),
            "trickle": (200, json.dumps(completion(self.good_reply))),
        }[mode]
        data = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n{payload}"
        ).encode()
        try:
            if mode == "trickle":  # a valid answer, one byte every 50 ms: about a minute in all
                for i in range(len(data)):
                    conn.sendall(data[i : i + 1])
                    time.sleep(0.05)
            else:
                conn.sendall(data)
        except OSError:
            self.abandoned[mode] += 1
        finally:
            if mode != "hang":
                conn.close()


def test_each_teacher_fault_is_bounded_recorded_with_its_reason_and_never_invented(tmp_path: Path) -> None:
    manifold = load_manifold(REPO_ROOT / "config/schemas/reward.yaml")
    good = json.dumps(
        {"reward_vector": {d: 3 for d in manifold.names}, "reward_intensity": 2, "safety_score": 5}
    )
    with FaultyServer(good) as server, TrainingDatabase(tmp_path / "store.duckdb") as db:
        cfg = TeacherConfig(
            backend="openai",
            base_url=server.url,
            openai_model="loopback",
            rating_mode="json_object",
            request_timeout_s=1.0,
            max_retries=2,
            max_concurrency=len(MODES),
        )
        teacher = OpenAITeacher(cfg, rationale=False)
        db.upsert_seed_prompts(
            [{"prompt_id": "p", "category": "c", "text": "How are you?", "content_hash": "h"}]
        )
        db.insert_trajectories(
            [
                {
                    "trajectory_id": f"t-{m}",
                    "prompt_id": "p",
                    "prompt_hash": "h",
                    "category": "c",
                    "prompt": "How are you?",
                    "candidate_index": i,
                    "response": f"Fine, thanks. MODE-{m}",
                    "teacher": "test",
                    "sampling": {},
                }
                for i, m in enumerate(MODES)
            ]
        )
        run = label_trajectories(db, teacher, manifold, [f"t-{m}" for m in MODES], batch_size=len(MODES))

        assert (run.labelled, run.failed) == (1, len(MODES) - 1)
        labelled = {r["trajectory_id"] for r in db.query("SELECT trajectory_id FROM reward_labels")}
        assert labelled == {"t-good"}  # nothing invented for the four that failed
        failures = {r["trajectory_id"]: r for r in db.query("SELECT * FROM label_failures")}
        assert set(failures) == {f"t-{m}" for m in MODES if m != "good"}
        reasons = {t: f["reason"] for t, f in failures.items()}
        # Malformed output is re-asked max_retries times; transport faults are retried exactly once.
        assert reasons["t-malformed"].startswith("invalid rating:")
        assert reasons["t-http500"].startswith("request failed: InternalServerError")
        assert reasons["t-hang"].startswith("request failed: APITimeoutError")
        assert reasons["t-trickle"].startswith("request failed: APITimeoutError")
        for mode in ("malformed", "http500", "hang", "trickle"):
            assert failures[f"t-{mode}"]["attempts"] == server.requests[mode], mode
        assert server.requests["malformed"] == 3 and server.requests["trickle"] == 2
        # The trickled answer was abandoned mid-way: its deadline covers the whole answer, not each byte.
        deadline = time.monotonic() + 10  # the server notices at its next byte or two
        while server.abandoned["trickle"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.abandoned["trickle"] == 2
        assert failures["t-malformed"]["raw_output"].startswith("Sure! I would rate")

        # The next run asks again and counts on: attempts add up to every request made.
        label_trajectories(db, teacher, manifold, ["t-http500"])
        [again] = db.query(
            "SELECT attempts FROM label_failures WHERE label_id = ?",
            [label_id("t-http500", teacher.rater_identity, manifold.schema_hash)],
        )
        assert again["attempts"] == server.requests["http500"] == 4
