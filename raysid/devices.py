"""Device selection and seeding shared by every torch stage (tokenizers and recommenders).

``check_device`` validates configs without torch; the functions that need torch import it when called.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

import numpy as np

from raysid.config import require

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: str, where: str) -> None:
    """ConfigError naming ``where`` unless value is "auto", "cpu", "cuda" or "cuda:N"."""
    require(DEVICE_PATTERN.fullmatch(value) is not None, where, f"expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda if available else cpu; any other torch device string is taken as given.

    Raises RuntimeError when a CUDA device is asked for on a machine without one.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda[:index]'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} was requested but no CUDA GPU is available "
            f"(torch {torch.__version__}); use device 'auto' or 'cpu'"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
