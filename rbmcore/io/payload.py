"""A model as plain values: hyperparameters and numpy arrays, to carry it to another process
(Spark's broadcast to the scoring workers, torch.distributed's training processes) without
pickling any code."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rbmcore.models.contract import Recommender
from rbmcore.models.factory import model_from_tensors


def model_payload(model: Recommender) -> dict[str, Any]:
    """{"hyper": the model's hyperparameters, "tensors": {name: numpy array}} (CPU copies)."""
    return {
        "hyper": model.hyperparameters(),
        "tensors": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()},
    }


def model_from_payload(payload: dict[str, Any], share: bool = False) -> Recommender:
    """The model a ``model_payload`` describes. ``share``: its tensors are the payload's arrays
    themselves (one copy of the weights in the process, not two), else copies."""
    tensors = {k: torch.from_numpy(writable(v)) for k, v in payload["tensors"].items()}
    return model_from_tensors(payload["hyper"], tensors, share=share)


def writable(array: np.ndarray) -> np.ndarray:
    """``array`` itself when numpy lets it be written (torch.from_numpy needs that), else a copy."""
    array = np.asarray(array)
    return array if array.flags.writeable else array.copy()
