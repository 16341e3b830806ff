"""Rating scales: what the stored rating codes mean, and which ratings count as a like.

Ratings are stored as integer codes 1..levels (``RatingsCSR.ratings``, ingest's
``ratings array<tinyint>``): code c is the value ``low + (c - 1) * step``. MovieLens 100k and
1M rate in whole stars 1..5 (``STARS``: codes equal the ratings); 10M, 20M, 25M, 32M and
latest in half stars 0.5..5.0 (``HALF_STARS``: codes 1..10); any other evenly spaced scale
(``1..10``, ``0..5``) is ``RatingScale(low, high, step)``. Implicit data (plays, clicks,
purchases: no rating) have one level (``IMPLICIT``): only *which* items a user has counts.

A rating is a like when it is at least ``like``; by default the scale's midpoint rounded up to
a step (3 on 1..5 and on 0.5..5.0, 6 on 1..10), the tutorial's "rating >= 3" on five stars.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_LEVELS = 100  # codes are stored as tinyint (int8) and packed into 7 bits by ingest


@dataclass(frozen=True)
class RatingScale:
    """An evenly spaced rating scale ``low, low + step, ..., high`` (or implicit data).

    ``like``: the like threshold (a value of the scale); None = the midpoint rule, resolved
    when the scale is made (so equal scales compare equal).
    """

    low: float = 1.0
    high: float = 5.0
    step: float = 1.0
    like: float | None = None
    implicit: bool = False

    def __post_init__(self) -> None:
        if self.implicit:
            if (self.low, self.high, self.step) != (1.0, 1.0, 1.0):
                raise ValueError("an implicit scale has the single level 1")
        elif not (self.step > 0 and self.high > self.low):
            raise ValueError(f"a rating scale needs low < high and step > 0, got {self.spec}")
        span = (self.high - self.low) / self.step
        if abs(span - round(span)) > 1e-9:
            raise ValueError(f"the scale's step {self.step:g} does not divide {self.spec}")
        if self.levels > MAX_LEVELS:
            raise ValueError(f"a rating scale has at most {MAX_LEVELS} levels, {self.spec} has "
                             f"{self.levels}")  # fmt: skip
        if self.implicit:
            object.__setattr__(self, "like", None)
            return
        if self.like is None:
            middle = (self.low + self.high) / 2
            steps = math.ceil((middle - self.low) / self.step - 1e-9)
            object.__setattr__(self, "like", self.low + steps * self.step)
        code = (self.like - self.low) / self.step + 1
        if abs(code - round(code)) > 1e-9 or not 1 <= round(code) <= self.levels:
            raise ValueError(
                f"like threshold {self.like:g} is not a rating of the scale {self.spec}"
            )
        object.__setattr__(self, "like", float(self.like))

    @property
    def levels(self) -> int:
        """The number of rating values (codes 1..levels)."""
        return int(round((self.high - self.low) / self.step)) + 1

    @property
    def name(self) -> str:
        """``stars``, ``half-stars``, ``implicit`` or the ``spec``."""
        for name, scale in NAMED_SCALES.items():
            if (scale.low, scale.high, scale.step, scale.implicit) == (
                self.low, self.high, self.step, self.implicit,
            ):  # fmt: skip
                return name
        return self.spec

    @property
    def spec(self) -> str:
        """``LOW..HIGH`` (step 1) or ``LOW..HIGH/STEP``, as ``parse_scale`` reads it."""
        if self.implicit:
            return "implicit"
        text = f"{self.low:g}..{self.high:g}"
        return text if self.step == 1 else f"{text}/{self.step:g}"

    @property
    def like_value(self) -> float:
        """The like threshold (by default the midpoint rounded up to a rating)."""
        return float(self.like) if self.like is not None else self.low

    @property
    def like_code(self) -> int:
        """The smallest code that is a like."""
        return int(round((self.like_value - self.low) / self.step)) + 1

    @property
    def is_integer(self) -> bool:
        """Whether every rating of the scale is a whole number."""
        return self.step == int(self.step) and self.low == int(self.low)

    def value_of(self, codes):
        """The rating value of ``codes`` (an int or an array of codes 1..levels)."""
        if isinstance(codes, int | np.integer):
            return self.low + (int(codes) - 1) * self.step
        return self.low + (np.asarray(codes, dtype=np.float64) - 1) * self.step

    def code_of(self, values) -> np.ndarray:
        """The codes of ratings ``values`` of the scale (an array)."""
        steps = (np.asarray(values, dtype=np.float64) - self.low) / self.step
        return (np.rint(steps) + 1).astype(np.int64)

    def values(self) -> np.ndarray:
        """(levels,) the value of each code 1..levels."""
        return self.value_of(np.arange(1, self.levels + 1))

    def with_like(self, like: float | None) -> RatingScale:
        """The same scale with another like threshold (None: the midpoint rule)."""
        return RatingScale(self.low, self.high, self.step, like, self.implicit)

    def to_dict(self) -> dict[str, Any]:
        """What ``ingest_summary.json`` and ``model.json`` record (``from_dict`` reads it)."""
        return {
            "name": self.name,
            "low": self.low,
            "high": self.high,
            "step": self.step,
            "levels": self.levels,
            "like_threshold": None if self.implicit else self.like_value,
            "implicit": self.implicit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RatingScale:
        """The scale ``to_dict`` wrote; None (a model saved before scales) is ``STARS``."""
        if data is None:
            return STARS
        if data.get("implicit"):
            return IMPLICIT
        return cls(
            float(data["low"]),
            float(data["high"]),
            float(data["step"]),
            None if data.get("like_threshold") is None else float(data["like_threshold"]),
        )


STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)
IMPLICIT = RatingScale(1.0, 1.0, 1.0, implicit=True)
NAMED_SCALES = {"stars": STARS, "half-stars": HALF_STARS, "implicit": IMPLICIT}

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SPEC = re.compile(rf"^\s*{_NUMBER}\s*\.\.\s*{_NUMBER}\s*(?:/\s*{_NUMBER})?\s*$")


def parse_scale(text: str) -> RatingScale:
    """A scale by name (``stars``, ``half-stars``, ``implicit``) or as ``LOW..HIGH`` (step 1)
    or ``LOW..HIGH/STEP``; ``ValueError`` naming the problem otherwise."""
    if text in NAMED_SCALES:
        return NAMED_SCALES[text]
    match = _SPEC.match(text)
    if not match:
        raise ValueError(
            f"rating scale must be one of {', '.join(NAMED_SCALES)} or LOW..HIGH[/STEP], "
            f"got {text!r}"
        )
    low, high, step = match.group(1), match.group(2), match.group(3) or "1"
    return RatingScale(float(low), float(high), float(step))


@dataclass(frozen=True)
class StateMap:
    """How a categorical RBM's K visible states encode a scale's codes.

    state_of_code: (levels + 1,) the state of each code (index 0 unused); values: (K,) the
    rating value each state stands for (the mean of its codes' values); first_like: the
    first state that is a like (states at or above it are likes).
    """

    state_of_code: np.ndarray
    values: np.ndarray
    first_like: int

    @property
    def n_states(self) -> int:
        return len(self.values)


def like_states(scale: RatingScale) -> StateMap:
    """Two states: 0 = below the like threshold, 1 = a like (the ``binary`` kind)."""
    codes = np.arange(scale.levels + 1)
    state = (codes >= scale.like_code).astype(np.int64)
    below = scale.values()[: scale.like_code - 1]
    above = scale.values()[scale.like_code - 1 :]
    values = np.array([below.mean() if len(below) else scale.low, above.mean()])
    return StateMap(state, values, 1)


def rating_states(scale: RatingScale, n_states: int = 0) -> StateMap:
    """The ``softmax`` kind's states: one per level of the scale (``n_states`` 0 or the
    number of levels), or the levels merged into ``n_states`` runs of neighbours that never
    straddle the like threshold (half stars into 5: {0.5, 1, 1.5}, {2, 2.5}, {3, 3.5},
    {4, 4.5}, {5})."""
    levels, like = scale.levels, scale.like_code
    if scale.implicit:
        raise ValueError("implicit data have no ratings for rating states")
    if n_states in (0, levels):
        groups = [np.array([c]) for c in range(1, levels + 1)]
    else:
        below = like - 1
        if not 2 <= n_states <= levels:
            raise ValueError(f"cannot merge the {levels} levels of {scale.spec} into "
                             f"{n_states} states")  # fmt: skip
        n_below = min(below, max(1 if below else 0, round(n_states * below / levels)))
        n_below = min(n_below, n_states - 1)
        groups = list(np.array_split(np.arange(1, like), n_below)) if n_below else []
        groups += list(np.array_split(np.arange(like, levels + 1), n_states - n_below))
    state = np.zeros(levels + 1, dtype=np.int64)
    values = np.zeros(len(groups))
    first_like = len(groups)
    for s, group in enumerate(groups):
        state[group] = s
        values[s] = scale.value_of(group).mean()
        if group[0] >= like:
            first_like = min(first_like, s)
    return StateMap(state, values, first_like)
