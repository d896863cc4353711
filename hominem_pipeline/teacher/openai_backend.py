"""The OpenAI-compatible teacher: LM Studio, OpenAI, vLLM, llama.cpp server, anything speaking
`/v1/chat/completions`.

Transport errors are retried by the client (with backoff); a rating that parses badly is asked again
with the reason, up to `max_retries` times; what still fails comes back as a failure with its reason.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.settings import TeacherConfig
from hominem_pipeline.teacher import prompts as P
from hominem_pipeline.teacher.base import RatingOutcome, TeacherError
from hominem_pipeline.teacher.parsing import (
    SCALE,
    RatingParseError,
    label_from_geval,
    parse_json_rating,
    scale_distribution,
)

log = logging.getLogger(__name__)


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
            max_retries=config.max_retries,
        )
        self._openai = openai
        self.identity = f"openai:{config.base_url}:{config.openai_model}"
        self.rater_identity = f"{self.identity}#{config.rating_mode}-v1"

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.config.max_concurrency)

    # -- generation ---------------------------------------------------------------------------
    def _complete(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        return self.client.chat.completions.create(model=self.config.openai_model, messages=messages, **kw)

    def _one_candidate(self, prompt: str, seed: int) -> str:
        s = self.config.sampling
        try:
            resp = self._complete(
                [{"role": "user", "content": prompt}],
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_new_tokens,
                seed=seed,
            )
        except self._openai.OpenAIError as exc:
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
        schema = manifold.json_schema_for_rating()
        mode = self.config.rating_mode
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "reward_label", "schema": schema, "strict": True}}
        if mode == "json_object":  # llama.cpp server's form (it rejects json_schema)
            return {"type": "json_object", "schema": schema}
        return None

    def _rate_json(self, prompt: str, response: str, manifold: RewardManifold) -> RatingOutcome:
        messages = [
            {"role": "system", "content": P.EVALUATOR_SYSTEM},
            {"role": "user", "content": P.json_rating_request(prompt, response, manifold)},
        ]
        fmt = self._response_format(manifold)
        raw, reason = None, "no attempt made"
        attempts = 0
        for attempts in range(1, self.config.max_retries + 2):
            kw: dict[str, Any] = {"temperature": 0.0, "max_tokens": self.config.rating_max_tokens}
            if fmt:
                kw["response_format"] = fmt
            try:
                resp = self._complete(messages, **kw)
            except self._openai.OpenAIError as exc:
                reason = f"request failed: {type(exc).__name__}: {exc}"
                continue
            raw = resp.choices[0].message.content or ""
            try:
                label = parse_json_rating(raw, manifold)
                return RatingOutcome(label=label, raw_output=raw, attempts=attempts)
            except RatingParseError as exc:
                reason = f"invalid rating: {exc}"
                messages = messages[:2] + [
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": f"That was not valid ({exc}). Reply with the JSON object only."},
                ]
        return RatingOutcome(label=None, failure=reason, raw_output=raw, attempts=attempts)

    def _scale_logprobs(self, prompt: str, response: str, key: str, desc: str, rubric: str) -> dict[str, float]:
        resp = self._complete(
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
            raise RatingParseError("the endpoint returned no logprobs (use rating_mode json_* instead)")
        found: dict[str, float] = {}
        for top in lp.content[0].top_logprobs:
            tok = top.token.strip()
            if tok in SCALE and tok not in found:
                found[tok] = top.logprob
        return found

    def _rate_geval(self, prompt: str, response: str, manifold: RewardManifold) -> RatingOutcome:
        scores = {}
        try:
            for key, desc, rubric in P.criteria(manifold):
                scores[key] = scale_distribution(self._scale_logprobs(prompt, response, key, desc, rubric))
            rationale = ""
            if self.rationale:
                r = self._complete(
                    [{"role": "user", "content": P.rationale_question(prompt, response)}],
                    temperature=0.0,
                    max_tokens=60,
                )
                rationale = (r.choices[0].message.content or "").strip()
            return RatingOutcome(label=label_from_geval(manifold, scores, rationale))
        except RatingParseError as exc:
            return RatingOutcome(label=None, failure=f"invalid rating: {exc}")
        except self._openai.OpenAIError as exc:
            return RatingOutcome(label=None, failure=f"request failed: {type(exc).__name__}: {exc}")

    def rate(self, items: list[tuple[str, str]], manifold: RewardManifold) -> list[RatingOutcome]:
        fn = self._rate_geval if self.config.rating_mode == "geval" else self._rate_json
        with self._pool() as pool:
            return list(pool.map(lambda pr: fn(pr[0], pr[1], manifold), items))
