"""Where ``textclf.sifting`` used to live: sifting is now :mod:`textclf.training.sifting`.

Kept so that code written against the documented ``from textclf.sifting import SiftingDataLoader``
(your own PyTorch loop) goes on working; new code imports from :mod:`textclf.training.sifting`.
"""

from __future__ import annotations

from .training.sifting import RelativeProbabilisticSifter, SiftingConfig, SiftingDataLoader, SiftingStats

__all__ = ["RelativeProbabilisticSifter", "SiftingConfig", "SiftingDataLoader", "SiftingStats"]
