"""The learning-rate schedule: linear warmup, then linear decay to 0, by the share of the data consumed.

>>> import torch
>>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
>>> schedule = LinearSchedule(optimizer, peak=2.0, warmup_ratio=0.1)
>>> schedule.set(0.55)  # half-way through the decay
>>> round(optimizer.param_groups[0]["lr"], 6)
1.0
"""

from __future__ import annotations

import torch

__all__ = ["LinearSchedule"]


class LinearSchedule:
    """Linear warmup then linear decay to 0, by the share of training rows consumed.

    Driven by progress through the data rather than a step count, it ends at 0 exactly however
    many steps sifting and gradient accumulation make. ``progress`` is the share last set.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, peak: float, warmup_ratio: float):
        self.optimizer, self.peak, self.warmup = optimizer, peak, warmup_ratio
        self.progress = 0.0

    def factor(self, progress: float) -> float:
        """The share of the peak rate at ``progress`` (0: the start of training, 1: its end)."""
        if progress < self.warmup:
            return progress / self.warmup
        return max(0.0, (1.0 - progress) / max(1e-12, 1.0 - self.warmup))

    def set(self, progress: float, scale: float = 1.0) -> None:
        """Give every parameter group the rate at ``progress``, times ``scale`` (sifted steps: their factor) and
        the group's own ``lr_scale`` (the head's: ``head_learning_rate_scale``)."""
        self.progress = progress
        for group in self.optimizer.param_groups:
            group["lr"] = self.peak * scale * self.factor(progress) * group.get("lr_scale", 1.0)
