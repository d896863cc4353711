"""What the server serves and how it changes under load: base model + LoRA adapter and the reward model
as one immutable `Serving` set, generation (whole or streamed), and hot-swap with rollback.

A swap loads the new set *beside* the serving one, checks it (it loads, and a probe forward pass gives
finite logits), and only then replaces the reference in one assignment. A request takes the reference
once at its start and keeps it, so it is answered wholly by the old set or wholly by the new one; a set
that fails to load or to pass the probe never replaces the serving one. The previous set stays loaded for
`rollback()`. Plain Python (no web framework): the HTTP app, the benchmarks and tests call this.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, model_name_for_spec
from hominem_pipeline.atomic import Pointer
from hominem_pipeline.device import model_device
from hominem_pipeline.models import chat_prompt, load_causal_lm, resolve_model
from hominem_pipeline.reward_model import RewardModel, RewardOutput
from hominem_pipeline.reward_model.registry import resolve_version, reward_model_root
from hominem_pipeline.serving.config import Selection, ServingConfig, current_selection, load_serving_config
from hominem_pipeline.settings import Settings

log = logging.getLogger(__name__)

PROBE_PROMPT = "Hello! How are you today?"


class ServingError(RuntimeError):
    """A model set cannot be loaded or served; the message says which part and why."""


@dataclass(frozen=True)
class Wanted:
    """What the configuration asks to serve right now, resolved to concrete versions."""

    profile: str
    base_model: str
    adapter_version: str | None
    reward_model_version: str | None


@dataclass
class Serving:
    """One loaded, checked set. Immutable once published; `lock` serialises generation on its model
    (one model's forward passes already use every core, and the global RNG seeds per request)."""

    wanted: Wanted
    model: Any
    tokenizer: Any
    reward_model: RewardModel | None
    loaded_at: datetime
    lock: threading.Lock = field(default_factory=threading.Lock)

    def versions(self) -> dict[str, Any]:
        return {
            "profile": self.wanted.profile,
            "base_model": self.wanted.base_model,
            "adapter_version": self.wanted.adapter_version,
            "reward_model_version": self.wanted.reward_model_version,
        }


@dataclass
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    latency_s: float
    serving: Serving


@dataclass
class SwapRecord:
    """The last swap attempt, as /health shows it."""

    at: datetime
    reason: str
    outcome: str  # "swapped" | "failed" | "rolled_back" | "unchanged"
    to: dict[str, Any]
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "reason": self.reason,
            "outcome": self.outcome,
            "to": self.to,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def _resolve_wanted(settings: Settings, selection: Selection) -> Wanted:
    adapter_version = None
    if selection.adapter_ref:
        registry = AdapterRegistry(settings.artifacts_dir, model_name_for_spec(selection.base_model))
        # `current` before anything was promoted means "the base model alone", not an error: a fresh
        # install serves the base model and picks up the first promoted adapter when the pointer appears.
        if selection.adapter_ref == CURRENT and registry.pointer(CURRENT).target is None:
            adapter_version = None
        elif selection.adapter_ref in registry.pointer_names():
            # Named here, verified when loaded: a corrupt target is then a failed swap that names it.
            adapter_version = registry.pointer(selection.adapter_ref).target
        else:
            adapter_version = registry.resolve(selection.adapter_ref).name
    reward_version = None
    if selection.reward_model_ref:
        root = reward_model_root(settings.artifacts_dir)
        if selection.reward_model_ref == CURRENT:
            reward_version = Pointer(root, CURRENT).target
        else:
            reward_version = resolve_version(settings.artifacts_dir, selection.reward_model_ref)[0].name
    return Wanted(selection.profile, selection.base_model, adapter_version, reward_version)


def _finite_probe(model: Any, tokenizer: Any) -> None:
    import torch

    batch = tokenizer(chat_prompt(tokenizer, PROBE_PROMPT), return_tensors="pt").to(model_device(model))
    with torch.no_grad():
        logits = model(**batch).logits
    if not bool(torch.isfinite(logits).all()):
        raise ServingError("probe failed: the model produced non-finite logits")


class Engine:
    """Loads and serves one `Serving` set at a time, follows the configuration, swaps and rolls back."""

    def __init__(self, settings: Settings, config: ServingConfig | None = None):
        self.settings = settings
        self.config = config or load_serving_config(settings)
        self._serving: Serving | None = None
        self._previous: Serving | None = None
        self._swap_lock = threading.Lock()  # one swap at a time; requests never wait on it
        self._last_wanted: Wanted | None = None
        self.last_swap: SwapRecord | None = None
        self.started_at = time.time()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- state -------------------------------------------------------------------------------------
    @property
    def serving(self) -> Serving:
        if self._serving is None:
            raise ServingError("nothing is loaded yet")
        return self._serving

    def wanted(self) -> Wanted:
        self.config = load_serving_config(self.settings)
        return _resolve_wanted(self.settings, current_selection(self.settings, self.config))

    # -- loading -----------------------------------------------------------------------------------
    def _load(self, wanted: Wanted) -> Serving:
        """A complete set for `wanted`, checked; reuses the serving model or reward model when unchanged."""
        now = self._serving
        same_model = now is not None and (now.wanted.base_model, now.wanted.adapter_version) == (
            wanted.base_model,
            wanted.adapter_version,
        )
        if same_model:
            model, tok = now.model, now.tokenizer
        else:
            base_path = resolve_model(wanted.base_model, self.settings.models_cache_dir)
            if wanted.adapter_version:
                registry = AdapterRegistry(
                    self.settings.artifacts_dir, model_name_for_spec(wanted.base_model)
                )
                model, tok, _ = registry.load(wanted.adapter_version, base_model_path=base_path)
            else:
                model, tok = load_causal_lm(base_path)
            _finite_probe(model, tok)
        if now is not None and now.wanted.reward_model_version == wanted.reward_model_version:
            reward = now.reward_model
        elif wanted.reward_model_version:
            # resolve_version checks the files against their published checksums before loading.
            folder, _ = resolve_version(self.settings.artifacts_dir, wanted.reward_model_version)
            reward = RewardModel.load(folder)
            out = reward.score(PROBE_PROMPT, "I am well, thank you.")
            if not all(math.isfinite(v) for v in [*out.reward_vector.values(), out.scalar_preference]):
                raise ServingError(
                    f"reward model {wanted.reward_model_version}: probe gave non-finite scores"
                )
        else:
            reward = None
        return Serving(wanted, model, tok, reward, datetime.now(UTC))

    def start(self) -> Serving:
        """Load what the configuration selects; raises (the server does not start) if it cannot."""
        wanted = self.wanted()
        t0 = time.perf_counter()
        self._serving = self._load(wanted)
        self._last_wanted = wanted
        self.last_swap = SwapRecord(
            datetime.now(UTC),
            "startup",
            "swapped",
            self._serving.versions(),
            seconds=time.perf_counter() - t0,
        )
        log.info("serving %s", self._serving.versions())
        return self._serving

    def reload(self, reason: str = "admin", force: bool = True) -> SwapRecord:
        """Bring the served set in line with the configuration. Without `force`, only a change of what is
        wanted since the last attempt triggers a load (so a rollback or a failed version is not retried
        every poll). A failure is logged and recorded; the serving set stays."""
        with self._swap_lock:
            t0 = time.perf_counter()
            try:
                wanted = self.wanted()
            except Exception as exc:  # a pointer naming a missing version, an invalid config file
                return self._record(reason, "failed", {}, f"{type(exc).__name__}: {exc}", t0)
            if not force and wanted == self._last_wanted:
                return self.last_swap  # type: ignore[return-value]
            self._last_wanted = wanted
            target = {
                "profile": wanted.profile,
                "base_model": wanted.base_model,
                "adapter_version": wanted.adapter_version,
                "reward_model_version": wanted.reward_model_version,
            }
            if self._serving is not None and self._serving.wanted == wanted:
                return self._record(reason, "unchanged", target, None, t0)
            try:
                new = self._load(wanted)
            except Exception as exc:
                log.error(
                    "swap to %s refused, still serving %s: %s: %s",
                    target,
                    self._serving.versions() if self._serving else None,
                    type(exc).__name__,
                    exc,
                )
                return self._record(reason, "failed", target, f"{type(exc).__name__}: {exc}", t0)
            self._previous, self._serving = self._serving, new  # the atomic switch
            log.info("swapped to %s (%s)", target, reason)
            return self._record(reason, "swapped", target, None, t0)

    def rollback(self) -> SwapRecord:
        """Serve the previous set again (it is still loaded); the one replaced becomes the previous."""
        with self._swap_lock:
            t0 = time.perf_counter()
            if self._previous is None:
                raise ServingError("no previous model set to roll back to")
            self._previous, self._serving = self._serving, self._previous
            log.info("rolled back to %s", self._serving.versions())
            return self._record("admin rollback", "rolled_back", self._serving.versions(), None, t0)

    def _record(
        self, reason: str, outcome: str, to: dict[str, Any], error: str | None, t0: float
    ) -> SwapRecord:
        self.last_swap = SwapRecord(datetime.now(UTC), reason, outcome, to, error, time.perf_counter() - t0)
        return self.last_swap

    # -- watching ----------------------------------------------------------------------------------
    def watch(self, interval_s: float | None = None) -> None:
        """Follow the adapter and reward-model pointers and the active profile in a background thread."""
        interval = interval_s or self.config.server.watch_interval_s

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload("pointer or profile changed", force=False)
                except Exception:  # never let the watcher die; the next tick tries again
                    log.exception("watcher tick failed")

        self._watcher = threading.Thread(target=loop, name="hominem-serving-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    # -- generation --------------------------------------------------------------------------------
    def sampling(
        self,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Sampling:
        d = self.config.generation
        limit = self.config.server.max_new_tokens_limit
        n = d.max_new_tokens if max_new_tokens is None else max_new_tokens
        if n > limit:
            raise ValueError(f"max_tokens: {n} is above the server's limit {limit}")
        return Sampling(
            n,
            d.temperature if temperature is None else temperature,
            d.top_p if top_p is None else top_p,
            seed,
        )

    def _inputs(self, s: Serving, messages: Sequence[Mapping[str, str]]) -> Any:
        enc = s.tokenizer(chat_prompt(s.tokenizer, messages), return_tensors="pt", add_special_tokens=False)
        return enc.to(model_device(s.model))

    def _generate_kwargs(self, s: Serving, inputs: Any, sampling: Sampling) -> dict[str, Any]:
        kw: dict[str, Any] = {
            **inputs,
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": s.tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            kw.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    @staticmethod
    def _seed(sampling: Sampling) -> None:
        if sampling.seed is not None:
            import torch

            torch.manual_seed(sampling.seed)

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> Reply:
        import torch

        s = self.serving  # taken once: this request is answered wholly by this set
        t0 = time.perf_counter()
        inputs = self._inputs(s, messages)
        n_prompt = inputs["input_ids"].shape[1]
        with s.lock, torch.no_grad():
            self._seed(sampling)
            out = s.model.generate(**self._generate_kwargs(s, inputs, sampling))
        new = out[0, n_prompt:]
        text = s.tokenizer.decode(new, skip_special_tokens=True)
        finish = (
            "length"
            if len(new) >= sampling.max_new_tokens and new[-1] != s.tokenizer.eos_token_id
            else "stop"
        )
        return Reply(text.strip(), n_prompt, len(new), finish, time.perf_counter() - t0, s)

    def stream(
        self, messages: Sequence[Mapping[str, str]], sampling: Sampling, done: Callable[[Reply], None]
    ) -> Iterator[str]:
        """Text pieces as they are generated; `done(reply)` is called once with the whole reply before the
        iterator ends. Closing the iterator early stops the generation at its next token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        s = self.serving
        t0 = time.perf_counter()
        inputs = self._inputs(s, messages)
        n_prompt = inputs["input_ids"].shape[1]
        streamer = TextIteratorStreamer(s.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        cancelled = threading.Event()
        result: dict[str, Any] = {}

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> bool:
                return cancelled.is_set()

        def run() -> None:
            try:
                with s.lock, torch.no_grad():
                    self._seed(sampling)
                    kw = self._generate_kwargs(s, inputs, sampling)
                    result["out"] = s.model.generate(
                        **kw, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancel()])
                    )
            except BaseException as exc:  # surfaced to the reader below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=run, name="hominem-generate", daemon=True)
        worker.start()
        pieces: list[str] = []
        try:
            for piece in streamer:
                if piece:
                    pieces.append(piece)
                    yield piece
        finally:
            cancelled.set()
            worker.join()
        if "error" in result:
            raise ServingError(f"generation failed: {result['error']}") from result["error"]
        new = result["out"][0, n_prompt:]
        finish = (
            "length"
            if len(new) >= sampling.max_new_tokens and new[-1] != s.tokenizer.eos_token_id
            else "stop"
        )
        done(Reply("".join(pieces).strip(), n_prompt, len(new), finish, time.perf_counter() - t0, s))

    # -- reward ------------------------------------------------------------------------------------
    @staticmethod
    def score(s: Serving, prompt: str, responses: Sequence[str]) -> list[RewardOutput] | None:
        if s.reward_model is None:
            return None
        return s.reward_model.score_batch([(prompt, r) for r in responses])

    def health(self) -> dict[str, Any]:
        s = self._serving
        return {
            "status": "ok" if s is not None else "loading",
            "uptime_s": round(time.time() - self.started_at, 1),
            "serving": s.versions() if s else None,
            "loaded_at": s.loaded_at.isoformat() if s else None,
            "previous": self._previous.versions() if self._previous else None,
            "last_swap": self.last_swap.as_dict() if self.last_swap else None,
        }
