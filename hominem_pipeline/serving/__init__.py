"""The chat server: a FastAPI app (`app.py`) over the chat service (`service.py`: conversations, labels
and choices into the event log) and the engine (`engine.py`: base + LoRA + reward model, generation,
hot-swap with rollback), configured by `config/serving.toml` (`config.py`). See docs/SERVING.md."""
