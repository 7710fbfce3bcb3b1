"""Fine-tuning."""

from .loop import TrainResult, train

__all__ = ["TrainResult", "train"]
