"""hominem: continual learning for a local language model (memory + reward channels into one LoRA)."""

import os

# Offline by design: nothing in hominem may reach a model hub at run time. A user who really wants the
# hub can export HF_HUB_OFFLINE=0 before starting; setdefault leaves that choice to them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
