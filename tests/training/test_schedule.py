"""The learning-rate schedule: warmup, then decay to 0 by the share of the data consumed."""

from __future__ import annotations

import pytest
import torch

from textclf.training.schedule import LinearSchedule


def test_learning_rate_warms_up_then_decays_to_zero_by_data_consumed():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LinearSchedule(opt, peak=2.0, warmup_ratio=0.1)
    seen = []
    for progress in (0.05, 0.1, 0.55, 1.0):
        schedule.set(progress)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([1.0, 2.0, 1.0, 0.0])


def test_scale_multiplies_every_groups_rate_and_progress_is_the_share_last_set():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=1.0)
    schedule = LinearSchedule(opt, peak=2.0, warmup_ratio=0.0)
    schedule.set(0.25, scale=1.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2.25, 2.25])
    assert schedule.progress == 0.25 and schedule.factor(0.25) == pytest.approx(0.75)
