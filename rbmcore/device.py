"""Choosing the torch device once: cuda when available, else cpu, overridable."""

from __future__ import annotations

import torch


def choose_device(requested: str | None = "auto") -> torch.device:
    """``"auto"``/None -> cuda if available else cpu; otherwise the named device (``"cuda:1"``)."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested but CUDA is not available here")
    return device
