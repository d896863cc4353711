"""The in-process teacher: transformers on a local causal LM (by default the embedded SmolLM2-135M).

Sampling is batched. Rating is G-Eval: for each criterion, one forward pass reads the next-token
probabilities of the digits 1-5, and the score is their expectation. A small model always yields valid
numbers this way; how sure it was is kept as `confidence`, so its weakness stays visible.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from hominem_pipeline.device import model_device
from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.settings import SamplingConfig
from hominem_pipeline.teacher import prompts as P
from hominem_pipeline.teacher.base import RatingOutcome
from hominem_pipeline.teacher.parsing import SCALE, RatingParseError, label_from_geval, scale_distribution

log = logging.getLogger(__name__)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class LocalTeacher:
    def __init__(
        self,
        model_path: str,
        sampling: SamplingConfig | None = None,
        spec: str | None = None,
        batch_size: int = 8,
        rationale: bool = True,
        rationale_max_new_tokens: int = 40,
    ):
        self.model_path = model_path
        self.sampling = sampling or SamplingConfig()
        self.batch_size = batch_size
        self.rationale = rationale
        self.rationale_max_new_tokens = rationale_max_new_tokens
        self.identity = f"local:{spec or model_path}"
        self.rater_identity = f"{self.identity}#geval-v2" + ("+rationale" if rationale else "")
        self._model: Any = None
        self._tok: Any = None
        self._digit_ids: list[int] | None = None

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        from hominem_pipeline.models import load_causal_lm

        self._model, self._tok = load_causal_lm(self.model_path)
        ids = []
        for digit in SCALE:
            enc = self._tok.encode(digit, add_special_tokens=False)
            if len(enc) != 1:
                raise RuntimeError(
                    f"the teacher's tokenizer splits the digit {digit!r} into {len(enc)} tokens; "
                    "G-Eval rating needs single-token digits"
                )
            ids.append(enc[0])
        self._digit_ids = ids

    def _chat(self, user: str, system: str | None = None, answer_prefix: str = "") -> str:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + answer_prefix

    # -- generation ---------------------------------------------------------------------------
    def generate(self, prompts: list[str], n: int, seed: int = 0) -> list[list[str]]:
        import torch

        self._load()
        out: list[list[str]] = []
        s = self.sampling
        for b, batch in enumerate(_batches(prompts, max(1, self.batch_size // max(1, n)) or 1)):
            texts = [self._chat(p) for p in batch]
            enc = self._tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model_device(self._model)
            )
            torch.manual_seed(seed + b)
            with torch.inference_mode():
                gen = self._model.generate(
                    **enc,
                    do_sample=s.temperature > 0,
                    temperature=s.temperature if s.temperature > 0 else None,
                    top_p=s.top_p if s.temperature > 0 else None,
                    max_new_tokens=s.max_new_tokens,
                    num_return_sequences=n,
                    pad_token_id=self._tok.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            decoded = self._tok.batch_decode(new, skip_special_tokens=True)
            for i in range(len(batch)):
                out.append([t.strip() for t in decoded[i * n : (i + 1) * n]])
        return out

    def _greedy(self, texts: list[str], max_new_tokens: int) -> list[str]:
        import torch

        out = []
        for batch in _batches(texts, self.batch_size):
            enc = self._tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model_device(self._model)
            )
            with torch.inference_mode():
                gen = self._model.generate(
                    **enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=self._tok.pad_token_id
                )
            out.extend(
                t.strip()
                for t in self._tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            )
        return out

    # -- rating -------------------------------------------------------------------------------
    def _scale_logprobs(self, texts: list[str]) -> list[dict[str, float]]:
        """For each chat text, the log-probabilities of the digits 1-5 as the next token."""
        import torch

        result = []
        for batch in _batches(texts, self.batch_size * 2):
            enc = self._tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model_device(self._model)
            )
            with torch.inference_mode():
                logits = self._model(**enc).logits[:, -1, :]  # left padding: last position is real
            logp = torch.log_softmax(logits.float(), dim=-1)[:, self._digit_ids]
            for row in logp.tolist():
                result.append(dict(zip(SCALE, row, strict=True)))
        return result

    def rate(self, items: list[tuple[str, str]], manifold: RewardManifold) -> list[RatingOutcome]:
        self._load()
        crit = P.criteria(manifold)
        texts = [
            # Starting the answer with "Rating: " puts ~95% of SmolLM2's next-token mass on the digits,
            # against ~10-25% without it (measured): the score is then read from the scale, not from noise.
            self._chat(
                P.geval_question(p, r, key, desc, rubric),
                P.EVALUATOR_SYSTEM,
                answer_prefix=P.GEVAL_ANSWER_PREFIX,
            )
            for p, r in items
            for key, desc, rubric in crit
        ]
        logprobs = self._scale_logprobs(texts)
        rationales = (
            self._greedy(
                [self._chat(P.rationale_question(p, r)) for p, r in items], self.rationale_max_new_tokens
            )
            if self.rationale
            else [""] * len(items)
        )
        outcomes = []
        for i in range(len(items)):
            rows = logprobs[i * len(crit) : (i + 1) * len(crit)]
            try:
                scores = {}
                for (key, _, _), lp in zip(crit, rows, strict=True):
                    if not all(math.isfinite(v) for v in lp.values()):
                        raise RatingParseError(f"{key}: non-finite log-probabilities")
                    scores[key] = scale_distribution(lp)
                label = label_from_geval(manifold, scores, rationales[i])
                outcomes.append(RatingOutcome(label=label, raw_output=None, attempts=1))
            except (RatingParseError, ValueError) as exc:
                outcomes.append(RatingOutcome(label=None, failure=str(exc), raw_output=str(rows), attempts=1))
        return outcomes
