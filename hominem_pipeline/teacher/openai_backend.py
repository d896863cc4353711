"""The OpenAI-compatible teacher: LM Studio, OpenAI, vLLM, llama.cpp server, anything speaking
`/v1/chat/completions`.

Two kinds of retry, each in one place. A transport failure (no connection, timeout, HTTP 408/429/5xx) is
retried once, in `_complete`; the client's own retries are off, so one call never multiplies into many.
A rating that parses badly (not JSON, off the 1-5 scale, a field missing) is asked again with the reason,
up to `max_retries` times. What still fails comes back as a failure with its reason and the number of
requests actually made (`RatingOutcome.attempts`).

`request_timeout_s` bounds each request as a whole (connect, headers, body): httpx's timeouts apply to
each read, so a server that trickles its answer a byte at a time would otherwise hold a request for ever.
One item (one rating) therefore takes at most 2 x (max_retries + 1) x request_timeout_s.

Ratings ask for integers on the 1-5 scale; in the `json_schema` and `json_object` modes the request carries
`parsing.rating_schema`, which the server enforces while decoding (llama.cpp turns it into a grammar;
OpenAI's strict structured outputs honour enums). The parser checks every value again all the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.settings import TeacherConfig
from hominem_pipeline.teacher import prompts as P
from hominem_pipeline.teacher.base import RatingOutcome, TeacherError
from hominem_pipeline.teacher.parsing import (
    SCALE,
    RatingParseError,
    label_from_geval,
    parse_json_rating,
    rating_schema,
    scale_distribution,
)

log = logging.getLogger(__name__)

#: A grammar-bound rationale stops here, so a small model cannot talk past `rating_max_tokens`.
RATIONALE_MAX_CHARS = 240
#: HTTP statuses worth one more try: the server was busy or broke, not the request.
_TRANSIENT_STATUS = (408, 429)


class RequestFailed(TeacherError):
    """A request failed for good (after its one transport retry); `requests` says how many were made."""

    def __init__(self, exc: Exception, requests: int):
        super().__init__(f"request failed: {type(exc).__name__}: {exc}")
        self.requests = requests


class DeadlineTransport(httpx.BaseTransport):
    """An httpx transport that gives each request one deadline for all of it. Connections are not kept
    alive, so every request opens its own socket; when the deadline passes, that socket is shut down,
    which ends a blocked read at once, and the request fails as a timeout."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._inner = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sockets: list[socket.socket] = []
        expired = threading.Event()

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
                sockets.append(info["return_value"].get_extra_info("socket"))

        def cut() -> None:
            expired.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        request.extensions = {**request.extensions, "trace": trace}
        timer = threading.Timer(self.seconds, cut)
        timer.daemon = True
        timer.start()
        try:
            response = self._inner.handle_request(request)
            response.read()  # the body is part of the request's time
        except httpx.TransportError as exc:
            if expired.is_set():
                raise httpx.ReadTimeout(
                    f"no complete answer within {self.seconds:g}s", request=request
                ) from exc
            raise
        finally:
            timer.cancel()
        return response

    def close(self) -> None:
        self._inner.close()


class OpenAITeacher:
    def __init__(self, config: TeacherConfig, rationale: bool = True):
        import openai

        self.config = config
        self.rationale = rationale
        # LM Studio and llama.cpp ignore the key but the client insists on one.
        api_key = os.environ.get(config.api_key_env) or "not-needed"
        self.client = openai.OpenAI(
            base_url=config.base_url,
            api_key=api_key,
            timeout=config.request_timeout_s,
            max_retries=0,  # transport retries happen once, in _complete, and nowhere else
            http_client=httpx.Client(
                transport=DeadlineTransport(config.request_timeout_s), timeout=config.request_timeout_s
            ),
        )
        self._openai = openai
        self.identity = f"openai:{config.base_url}:{config.openai_model}"
        # v2: integer ratings on the 1-5 scale (v1 asked for numbers in the manifold's ranges).
        self.rater_identity = f"{self.identity}#{config.rating_mode}-v2"

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.config.max_concurrency)

    # -- requests -----------------------------------------------------------------------------
    def _transient(self, exc: Exception) -> bool:
        if isinstance(exc, self._openai.APIConnectionError):  # includes timeouts
            return True
        status = getattr(exc, "status_code", None)
        return status is not None and (status in _TRANSIENT_STATUS or status >= 500)

    def _complete(self, messages: list[dict[str, str]], **kw: Any) -> tuple[Any, int]:
        """One chat completion and how many requests it took (1 or 2: a transport failure is retried once).
        Raises `RequestFailed` when it still fails, or at once for a non-transient error (e.g. HTTP 400)."""
        for attempt in (1, 2):
            try:
                resp = self.client.chat.completions.create(
                    model=self.config.openai_model, messages=messages, **kw
                )
                return resp, attempt
            except self._openai.OpenAIError as exc:
                if attempt == 2 or not self._transient(exc):
                    raise RequestFailed(exc, attempt) from exc
                log.warning("teacher request failed (%s); retrying once", type(exc).__name__)
        raise AssertionError("unreachable")

    # -- generation ---------------------------------------------------------------------------
    def _one_candidate(self, prompt: str, seed: int) -> str:
        s = self.config.sampling
        try:
            resp, _ = self._complete(
                [{"role": "user", "content": prompt}],
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_new_tokens,
                seed=seed,
            )
        except RequestFailed as exc:
            raise TeacherError(f"teacher at {self.config.base_url} failed to generate: {exc}") from exc
        text = (resp.choices[0].message.content or "").strip()
        if not text:
            raise TeacherError(f"teacher at {self.config.base_url} returned an empty candidate")
        return text

    def generate(self, prompts: list[str], n: int, seed: int = 0) -> list[list[str]]:
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        with self._pool() as pool:
            texts = list(pool.map(lambda ij: self._one_candidate(prompts[ij[0]], seed + ij[1]), jobs))
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]

    # -- rating -------------------------------------------------------------------------------
    def _response_format(self, manifold: RewardManifold) -> dict[str, Any] | None:
        mode = self.config.rating_mode
        if mode == "json_schema":  # OpenAI's strict mode refuses maxLength, so the rationale is unbounded
            schema = rating_schema(manifold, rationale=self.rationale)
            return {
                "type": "json_schema",
                "json_schema": {"name": "reward_rating", "schema": schema, "strict": True},
            }
        if mode == "json_object":  # llama.cpp server's form (it answers json_schema with HTTP 500)
            schema = rating_schema(
                manifold, rationale=self.rationale, rationale_max_chars=RATIONALE_MAX_CHARS
            )
            return {"type": "json_object", "schema": schema}
        return None

    def _rate_json(self, prompt: str, response: str, manifold: RewardManifold) -> RatingOutcome:
        messages = [
            {"role": "system", "content": P.EVALUATOR_SYSTEM},
            {"role": "user", "content": P.json_rating_request(prompt, response, manifold, self.rationale)},
        ]
        kw: dict[str, Any] = {"temperature": 0.0, "max_tokens": self.config.rating_max_tokens}
        fmt = self._response_format(manifold)
        if fmt:
            kw["response_format"] = fmt
        raw, reason, requests = None, "no attempt made", 0
        for _ in range(self.config.max_retries + 1):  # the first ask, then one re-ask per invalid answer
            try:
                resp, n = self._complete(messages, **kw)
            except RequestFailed as exc:
                return RatingOutcome(
                    label=None, failure=str(exc), raw_output=raw, attempts=requests + exc.requests
                )
            requests += n
            raw = resp.choices[0].message.content or ""
            try:
                label = parse_json_rating(raw, manifold)
                return RatingOutcome(label=label, raw_output=raw, attempts=requests)
            except RatingParseError as exc:
                reason = f"invalid rating: {exc}"
                messages = messages[:2] + [
                    {"role": "assistant", "content": raw},
                    {
                        "role": "user",
                        "content": f"That was not valid ({exc}). Reply with the JSON object only.",
                    },
                ]
        return RatingOutcome(label=None, failure=reason, raw_output=raw, attempts=requests)

    def _scale_logprobs(
        self, prompt: str, response: str, key: str, desc: str, rubric: str
    ) -> tuple[dict[str, float] | None, int]:
        """{digit: logprob} for the answer's first token (None if the endpoint sent no logprobs), and the
        number of requests it took."""
        resp, requests = self._complete(
            [
                {"role": "system", "content": P.EVALUATOR_SYSTEM},
                {"role": "user", "content": P.geval_question(prompt, response, key, desc, rubric)},
            ],
            temperature=0.0,
            max_tokens=1,
            logprobs=True,
            top_logprobs=20,
        )
        lp = resp.choices[0].logprobs
        if lp is None or not lp.content:
            return None, requests
        found: dict[str, float] = {}
        for top in lp.content[0].top_logprobs:
            tok = top.token.strip()
            if tok in SCALE and tok not in found:
                found[tok] = top.logprob
        return found, requests

    def _rate_geval(self, prompt: str, response: str, manifold: RewardManifold) -> RatingOutcome:
        scores, requests = {}, 0
        try:
            for key, desc, rubric in P.criteria(manifold):
                found, n = self._scale_logprobs(prompt, response, key, desc, rubric)
                requests += n
                if found is None:
                    raise RatingParseError(
                        "the endpoint returned no logprobs (use rating_mode json_* instead)"
                    )
                scores[key] = scale_distribution(found)
            rationale = ""
            if self.rationale:
                r, n = self._complete(
                    [{"role": "user", "content": P.rationale_question(prompt, response)}],
                    temperature=0.0,
                    max_tokens=60,
                )
                requests += n
                rationale = (r.choices[0].message.content or "").strip()
            return RatingOutcome(label=label_from_geval(manifold, scores, rationale), attempts=requests)
        except RatingParseError as exc:
            return RatingOutcome(label=None, failure=f"invalid rating: {exc}", attempts=requests)
        except RequestFailed as exc:
            return RatingOutcome(label=None, failure=str(exc), attempts=requests + exc.requests)

    def rate(self, items: list[tuple[str, str]], manifold: RewardManifold) -> list[RatingOutcome]:
        fn = self._rate_geval if self.config.rating_mode == "geval" else self._rate_json
        with self._pool() as pool:
            return list(pool.map(lambda pr: fn(pr[0], pr[1], manifold), items))
