"""textclf: fine-tune, evaluate and run transformer text classifiers on your own machine.

    >>> import textclf
    >>> result = textclf.train("reviews.csv", "out/reviews", epochs=2)  # doctest: +SKIP
    >>> clf = textclf.Classifier.load("out/reviews")  # doctest: +SKIP
    >>> clf.predict(["works great"])[0].predicted_label  # doctest: +SKIP
    'positive'
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Hyperparameters
from .data import ReadOptions
from .errors import ArtifactError, ConfigError, DataError, ModelError, TextclfError
from .evaluation import EvaluationReport, evaluate
from .inference import Classifier, Prediction
from .training import TrainResult, train

__all__ = [
    "ArtifactError",
    "Classifier",
    "ConfigError",
    "DataError",
    "EvaluationReport",
    "Hyperparameters",
    "ModelError",
    "Prediction",
    "ReadOptions",
    "TextclfError",
    "TrainResult",
    "__version__",
    "evaluate",
    "train",
]
