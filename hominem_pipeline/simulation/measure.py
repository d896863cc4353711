"""What a simulated week did for the user, measured outside the system under test: the persona's own rule
decides the win rate of the served adapter (`current`) against the base model on fresh prompts; the
facts it told are probed by NLL in new phrasings and by asking; forgetting is the NLL change on the fixed
general set. Greedy decoding throughout, so base and adapter are compared on equal terms and a week with
no new adapter measures exactly what the week before did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, model_name_for_spec
from hominem_pipeline.evaluation.config import load_eval_inputs
from hominem_pipeline.evaluation.scoring import greedy_generate, response_nll
from hominem_pipeline.health.online import ONLINE_UPDATE_NOTE
from hominem_pipeline.models import load_causal_lm, resolve_model
from hominem_pipeline.settings import Settings
from hominem_pipeline.simulation.persona import Persona


@dataclass
class WeekMeasure:
    adapter: str | None  # the `current` version measured (None: the base model is served)
    win_rate: float  # current vs base under the persona's rule on its held-out prompts (tie = 1/2)
    satisfied_current: float  # share of current's replies the rule fully satisfies
    satisfied_base: float
    fact_nll_base: float | None  # mean NLL/token of the facts' statements after new phrasings
    fact_nll_current: float | None
    fact_nll_change: float | None  # relative, current vs base (negative = remembered better)
    fact_answer_rate_base: float | None  # share of new-phrasing questions whose greedy answer names the fact
    fact_answer_rate_current: float | None
    general_nll_change: float  # relative, current vs base, on the fixed general set (drift)
    prompts: int
    example: dict[str, str]  # one held-out prompt and both replies, for the report
    # The newest cycle's adapter when it is not `current` (a cycle the gates held): what the user would
    # have got, so the report can tell a trainer that learned nothing from a gate that held what it learned.
    # Online updates are not candidates here: they move only the `online` pointer, which is never served.
    candidate: str | None = None
    candidate_win_rate: float | None = None
    candidate_satisfied: float | None = None
    candidate_general_nll_change: float | None = None
    candidate_fact_nll_change: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def win_rate(persona: Persona, current: list[str], base: list[str]) -> float:
    """Share of prompts where the persona's rule scores current's reply above base's (a tie counts half)."""
    wins = [
        1.0 if c > b else 0.5 if c == b else 0.0
        for c, b in (
            (persona.preference.score(x), persona.preference.score(y))
            for x, y in zip(current, base, strict=True)
        )
    ]
    return fmean(wins) if wins else 0.5


def _rel(new: float, old: float) -> float:
    return (new - old) / old if old else 0.0


class Meter:
    """Holds the base model and the last measured adapter between weeks (loading costs seconds)."""

    def __init__(self, settings: Settings, persona: Persona, max_new_tokens: int, batch_size: int = 8):
        self.settings, self.persona = settings, persona
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        spec = settings.inference.student.model
        self.base_path = resolve_model(spec, settings.models_cache_dir)
        self.registry = AdapterRegistry(settings.artifacts_dir, model_name_for_spec(spec))
        self.base = load_causal_lm(self.base_path)
        _, regression = load_eval_inputs(Path(settings.config_dir))
        self.general = [(g.prompt, g.reference) for g in regression.general]
        self._adapter: tuple[str, Any, Any] | None = None
        self._base_out: dict[str, Any] = {}

    def current_version(self) -> str | None:
        return self.registry.pointer(CURRENT).target

    def newest_cycle_version(self) -> str | None:
        """The newest version a training cycle published (an online update's METADATA notes say so)."""
        for v in reversed(self.registry.versions()):
            if ONLINE_UPDATE_NOTE not in ((v.metadata.model_extra or {}).get("notes") or {}):
                return v.version
        return None

    def _load(self, version: str | None) -> tuple[str | None, Any, Any]:
        if version is None:
            return None, *self.base
        if self._adapter is None or self._adapter[0] != version:
            model, tok, _ = self.registry.load(version, base_model_path=self.base_path)
            model.eval()
            self._adapter = (version, model, tok)
        return self._adapter

    def _outputs(self, model: Any, tok: Any) -> dict[str, Any]:
        p = self.persona
        prompts = p.held_out_prompts()
        questions = [(q, f) for f in p.facts for q in f.new_phrasings]
        replies = greedy_generate(model, tok, prompts, self.max_new_tokens, self.batch_size)
        answers = greedy_generate(model, tok, [q for q, _ in questions], self.max_new_tokens, self.batch_size)
        fact_nll = response_nll(model, tok, [(q, f.correction) for q, f in questions], self.batch_size)
        general = response_nll(model, tok, self.general, self.batch_size)
        return {
            "replies": replies,
            "answer_rate": fmean(f.answered(a) for a, (_, f) in zip(answers, questions, strict=True))
            if questions
            else None,
            "fact_nll": fmean(fact_nll) if fact_nll else None,
            "general_nll": fmean(general),
        }

    def measure(self) -> WeekMeasure:
        if not self._base_out:
            self._base_out = self._outputs(*self.base)  # the base model never changes: measured once
        version, model, tok = self._load(self.current_version())
        cur = self._base_out if version is None else self._outputs(model, tok)
        base = self._base_out
        prompts = self.persona.held_out_prompts()
        score = self.persona.preference.score
        newest = self.newest_cycle_version()
        held: dict[str, Any] = {}
        if newest is not None and newest != version:
            _, cmodel, ctok = self._load(newest)
            out = self._outputs(cmodel, ctok)
            held = {
                "candidate": newest,
                "candidate_win_rate": win_rate(self.persona, out["replies"], base["replies"]),
                "candidate_satisfied": fmean(score(r) == 1.0 for r in out["replies"]),
                "candidate_general_nll_change": _rel(out["general_nll"], base["general_nll"]),
                "candidate_fact_nll_change": _rel(out["fact_nll"], base["fact_nll"])
                if base["fact_nll"]
                else None,
            }
        return WeekMeasure(
            adapter=version,
            win_rate=win_rate(self.persona, cur["replies"], base["replies"]),
            satisfied_current=fmean(score(r) == 1.0 for r in cur["replies"]),
            satisfied_base=fmean(score(r) == 1.0 for r in base["replies"]),
            fact_nll_base=base["fact_nll"],
            fact_nll_current=cur["fact_nll"],
            fact_nll_change=_rel(cur["fact_nll"], base["fact_nll"]) if base["fact_nll"] else None,
            fact_answer_rate_base=base["answer_rate"],
            fact_answer_rate_current=cur["answer_rate"],
            general_nll_change=_rel(cur["general_nll"], base["general_nll"]),
            prompts=len(prompts),
            example={"prompt": prompts[0], "current": cur["replies"][0], "base": base["replies"][0]},
            **held,
        )
