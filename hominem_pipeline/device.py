"""Where models run: the one device choice that training, evaluation and serving (and the tests) share.

`select_device()` picks CUDA when torch sees a GPU, else the CPU; `HOMINEM_DEVICE` (`auto`, `cpu`, `cuda`,
`cuda:N`) overrides it. On a GPU that supports bfloat16 the forward passes run under bf16 autocast
(weights and optimizer state stay fp32, so LoRA updates keep their precision); on the CPU everything is
fp32, exactly as before. Asking for CUDA where there is none is an error naming the variable, never a
silent fall-back to a device fifty times slower.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEVICE_ENV = "HOMINEM_DEVICE"


class DeviceError(ValueError):
    """The requested device does not exist here; the message names HOMINEM_DEVICE and what to set."""


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu", "cuda", "cuda:1"
    bf16: bool  # forward passes under bfloat16 autocast
    reason: str  # why this device, for logs and METADATA

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 autocast on a GPU that supports it; nothing on the CPU (fp32, bit-for-bit as before)."""
        if not self.bf16:
            yield
            return
        import torch

        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "bf16": self.bf16, "reason": self.reason}


def select_device(requested: str | None = None) -> DeviceChoice:
    """The device to run on: `requested`, else $HOMINEM_DEVICE, else `auto` (CUDA if present, else CPU)."""
    import torch

    want = (requested or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    if want == "auto":
        want, reason = ("cuda", "auto: CUDA available") if has_cuda else ("cpu", "auto: no CUDA device")
    elif want == "cpu" or want.startswith("cuda"):
        reason = f"{DEVICE_ENV}={want}" if not requested else f"requested {want}"
    else:
        raise DeviceError(f"{DEVICE_ENV}={want!r}: expected auto, cpu, cuda or cuda:N")
    if want.startswith("cuda"):
        if not has_cuda:
            raise DeviceError(f"{DEVICE_ENV}={want}: torch sees no CUDA device here; set it to auto or cpu")
        index = want.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(
                f"{DEVICE_ENV}={want}: there are {torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)"
            )
        return DeviceChoice(want, bool(torch.cuda.is_bf16_supported()), reason)
    return DeviceChoice("cpu", False, reason)


def model_device(model: Any) -> Any:
    """The torch device a model's weights are on (where its inputs must go)."""
    return next(model.parameters()).device
