"""The simulated user at the keyboard: it talks to the running server over HTTP exactly as a chat client
would (`/v1/chat/completions`, `/generate` to regenerate, `/feedback` for emoji, choices and corrections)
and judges each reply by its persona's rule. Every request's outcome is counted; a failed request is
recorded with its reason, never retried silently."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from hominem_pipeline.simulation.persona import Fact, Judgement, Persona


@dataclass
class DayLog:
    """What one simulated day of chatting produced."""

    turns: int = 0
    replies: int = 0
    requests: int = 0
    failed: list[str] = field(default_factory=list)  # "POST /path: reason"
    labels: int = 0
    choices: int = 0
    corrections: int = 0
    facts_told: int = 0
    facts_asked: int = 0
    facts_answered: int = 0  # asked and the served reply named the fact
    satisfied: int = 0  # replies whose (first draft) score was 1 under the persona's rule
    served: list[str] = field(default_factory=list)  # adapter version of each reply, in order ("base" = none)


class SimulatedUser:
    def __init__(self, persona: Persona, base_url: str, timeout_s: float = 600.0):
        self.persona = persona
        self.rng = random.Random(persona.seed)
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s)
        self._pool = [(c, p) for c, ps in persona.categories.items() for p in ps]
        self._order: list[tuple[str, str]] = []
        self.facts_told: list[Fact] = []

    def close(self) -> None:
        self.client.close()

    # -- HTTP ------------------------------------------------------------------------------------------
    def _post(self, day: DayLog, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        day.requests += 1
        try:
            r = self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            day.failed.append(f"POST {path}: {type(exc).__name__}: {exc}")
            return None
        if r.status_code != 200:
            day.failed.append(f"POST {path}: HTTP {r.status_code}: {r.text[:200]}")
            return None
        return r.json()

    def _chat(self, day: DayLog, conversation: str, text: str, seed: int) -> dict[str, Any] | None:
        out = self._post(
            day,
            "/v1/chat/completions",
            {
                "model": "hominem",
                "user": conversation,
                "seed": seed,
                "messages": [{"role": "user", "content": text}],
            },
        )
        if out is None:
            return None
        meta = out["hominem"]
        day.replies += 1
        day.served.append(meta.get("adapter_version") or "base")
        return {"text": out["choices"][0]["message"]["content"], **meta}

    def _regenerate(self, day: DayLog, user_message_id: str, seed: int) -> dict[str, Any] | None:
        out = self._post(day, "/generate", {"regenerate": user_message_id, "seed": seed})
        if out is not None:
            day.replies += 1
            day.served.append(out.get("adapter_version") or "base")
        return out

    def _label(self, day: DayLog, message_id: str, judged: Judgement) -> None:
        if self.rng.random() >= self.persona.habits.label_rate:
            return
        emoji = self.persona.habits.satisfied if judged.satisfied else self.persona.habits.missed
        if self._post(day, "/feedback", {"message_id": message_id, "labels": [emoji]}) is not None:
            day.labels += 1

    def serving(self, want: str | None, timeout_s: float = 60.0) -> dict[str, Any]:
        """What the server says it serves (GET /health), once it serves adapter `want` (the server follows
        the pointers on its own, within its watch interval) or `timeout_s` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                health = self.client.get("/health").json()
            except (httpx.HTTPError, ValueError) as exc:
                health = {"status": f"unreachable: {exc}"}
            served = (health.get("serving") or {}).get("adapter_version")
            if served == want or time.monotonic() > deadline:
                return health
            time.sleep(0.2)

    # -- a day -------------------------------------------------------------------------------------
    def _next_prompt(self) -> str:
        if not self._order:
            self._order = list(self._pool)
            self.rng.shuffle(self._order)
        return self._order.pop()[1]

    def _ask(self, day: DayLog, conversation: str, prompt: str, seed: int) -> None:
        """One turn: a reply, maybe a second draft and a choice between them, emoji on what was judged."""
        first = self._chat(day, conversation, prompt, seed)
        if first is None:
            return
        judged = self.persona.judge(first["text"], self.rng)
        day.satisfied += self.persona.preference.score(first["text"]) >= 1.0
        if self.rng.random() < self.persona.habits.regenerate_rate:
            second = self._regenerate(day, first["user_message_id"], seed + 1)
            if second is not None:
                other = self.persona.judge(second["text"], self.rng)
                self._label(day, first["message_id"], judged)
                self._label(day, second["message_id"], other)
                if other.score != judged.score and first["text"].strip() != second["text"].strip():
                    chosen, rejected = (first, second) if judged.score > other.score else (second, first)
                    body = {
                        "chosen_message_id": chosen["message_id"],
                        "rejected_message_id": rejected["message_id"],
                    }
                    if self._post(day, "/feedback", body) is not None:
                        day.choices += 1
                return
        self._label(day, first["message_id"], judged)

    def _ask_fact(self, day: DayLog, conversation: str, fact: Fact, seed: int) -> None:
        out = self._chat(day, conversation, fact.question, seed)
        if out is None:
            return
        day.facts_asked += 1
        if fact.answered(out["text"]):
            day.facts_answered += 1
            return
        body = {"message_id": out["message_id"], "correction": fact.correction}
        done = self._post(day, "/feedback", body)
        if done is not None and done["event_ids"]:
            # The correction states the right answer; the knowledge extractor learns it from the user's
            # words, so the user does not wait for a reply to it.
            day.corrections += 1

    def chat_day(self, day_index: int) -> DayLog:
        """The persona's turns for simulated day `day_index` (0-based); the caller sets the clock."""
        day = DayLog()
        name = self.persona.name
        seed = self.persona.seed * 100_003 + day_index * 1_000
        if day_index == 0:  # the first day: the user tells the assistant about itself
            for i, fact in enumerate(self.persona.facts):
                if self._chat(day, f"{name}-d{day_index}-fact{i}", fact.tell, seed + 500 + i) is not None:
                    self.facts_told.append(fact)
                    day.facts_told += 1
        for i in range(self.persona.habits.turns_per_day):
            day.turns += 1
            self._ask(day, f"{name}-d{day_index}-t{i}", self._next_prompt(), seed + 2 * i)
        if self.facts_told and day_index >= self.persona.habits.ask_facts_after_days:
            fact = self.facts_told[day_index % len(self.facts_told)]
            self._ask_fact(day, f"{name}-d{day_index}-ask", fact, seed + 900)
        return day
