"""Learning-rate schedules: a factor multiplying the base learning rate at each step."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Schedule(BaseModel):
    """Linear warmup over `warmup` steps, then `decay`: constant, cosine (to `min_factor` at `total`),
    linear (to `min_factor` at `total`) or step (× `step_factor` every `step_every` steps)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    decay: Literal["constant", "cosine", "linear", "step"] = "constant"
    warmup: int = Field(default=0, ge=0)
    total: int | None = Field(default=None, gt=0)
    min_factor: float = Field(default=0.0, ge=0)
    step_every: int = Field(default=1000, gt=0)
    step_factor: float = Field(default=0.1, gt=0)

    def factor(self, k: int, total: int) -> float:
        """Multiplier of the base lr used for update k (k = 0, 1, ...)."""
        if k < self.warmup:
            return (k + 1) / self.warmup
        total = self.total or total
        span = max(total - self.warmup, 1)
        u = min(max(k - self.warmup, 0) / span, 1.0)
        if self.decay == "cosine":
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * u))
        if self.decay == "linear":
            return 1 - (1 - self.min_factor) * u
        if self.decay == "step":
            return self.step_factor ** ((k - self.warmup) // self.step_every)
        return 1.0
