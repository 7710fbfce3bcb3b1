"""textclf: fine-tune, evaluate and run transformer text classifiers on your own machine.

>>> import textclf
>>> result = textclf.train("reviews.csv", "out/reviews", epochs=2)  # doctest: +SKIP
>>> clf = textclf.Classifier.load("out/reviews")  # doctest: +SKIP
>>> clf.predict(["works great"])[0].predicted_label  # doctest: +SKIP
'positive'
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from .errors import ArtifactError, ConfigError, DataError, ModelError, TextclfError

# Imported on first use, so ``from textclf import Classifier`` with an ONNX backend never
# loads PyTorch or transformers (the training stack).
_LAZY = {
    "Hyperparameters": "config",
    "RunOptions": "config",
    "ReadOptions": "data",
    "EvaluationReport": "evaluation",
    "evaluate": "evaluation",
    "Classifier": "inference",
    "Prediction": "inference",
    "MultiLabelPrediction": "inference",
    "TrainResult": "training",
    "train": "training",
    "TuneResult": "tuning",
    "tune": "tuning",
}

if TYPE_CHECKING:
    from .config import Hyperparameters, RunOptions
    from .data import ReadOptions
    from .evaluation import EvaluationReport, evaluate
    from .inference import Classifier, MultiLabelPrediction, Prediction
    from .training import TrainResult, train
    from .tuning import TuneResult, tune


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "ArtifactError",
    "Classifier",
    "ConfigError",
    "DataError",
    "EvaluationReport",
    "Hyperparameters",
    "ModelError",
    "MultiLabelPrediction",
    "Prediction",
    "ReadOptions",
    "RunOptions",
    "TextclfError",
    "TrainResult",
    "TuneResult",
    "__version__",
    "evaluate",
    "train",
    "tune",
]
