"""The Classifier: load a model folder once, classify texts fast.

A call is ``preprocess`` (tokenise, sort by length, pad per batch) ->
``forward`` (the backend, under ``inference_mode``) -> ``postprocess``
(softmax, labels). ``predict``, ``evaluate`` and the server share it.

    >>> from textclf import Classifier
    >>> clf = Classifier.load("out/reviews")  # doctest: +SKIP
    >>> clf.predict(["Great value, works as advertised."])[0].to_dict()  # doctest: +SKIP
    {'probabilities': [0.03, 0.97], 'labels': ['negative', 'positive'], 'predicted_label': 'positive'}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from . import artifact
from .data import LabelSet
from .errors import ConfigError, DataError, ModelError
from .models import forward_logits, inference_dtype, load_tokenizer, pads_left, quiet_transformers
from .batching import collate, encode, eval_batches

__all__ = ["BACKENDS", "BACKEND_CHOICES", "Classifier", "Prediction"]

BACKENDS = ("torch",)
BACKEND_CHOICES = ("auto", *BACKENDS)  # what --backend accepts; auto picks the fastest backend the folder has
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class Prediction:
    """One text's result, in JumpStart's verbose shape."""

    predicted_label: int | str
    probabilities: list[float]
    labels: list[int | str]

    def to_dict(self) -> dict:
        return {"probabilities": self.probabilities, "labels": self.labels, "predicted_label": self.predicted_label}


class Backend(Protocol):
    """Runs the network: padded token ids in, logits out."""

    name: str
    config: object  # the model's transformers config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray: ...


class TorchBackend:
    """The model as saved, run by PyTorch on the CPU.

    ``dtype=torch.bfloat16`` runs the matrix products under bfloat16 autocast (weights stay
    fp32): about twice as fast on CPUs with native bfloat16, probabilities within ~1e-2.
    (Storing the Linear layers in bfloat16 up front gave the same numbers but made single-text
    calls ~25% slower in the serving benchmark, so weights are cast per call.)
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.float32):
        self.model = model
        self.config = model.config
        self.dtype = dtype

    @classmethod
    def from_dir(cls, model_dir: Path, dtype: torch.dtype = torch.float32) -> "TorchBackend":
        from transformers import AutoConfig, AutoModelForSequenceClassification

        try:
            config = AutoConfig.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot read the model's config.json ({exc}).") from exc
        if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
            raise ModelError(
                f"{model_dir}: not a text-classification model (architectures {config.architectures}); "
                "fine-tune it first with `textclf train --model DIR`."
            )
        try:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the model ({exc}).") from exc
        return cls(model.eval(), dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
            return forward_logits(self.model, input_ids, attention_mask).float().numpy()


class Classifier:
    """A loaded text classifier. Build it with :meth:`load`."""

    def __init__(self, backend: Backend, tokenizer, labels: LabelSet, max_seq_length: int, batch_size: int = DEFAULT_BATCH_SIZE):
        self.backend = backend
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "torch", batch_size: int = DEFAULT_BATCH_SIZE,
             dtype: str = "float32") -> "Classifier":
        """Load a textclf model folder (or any Hugging Face classification folder).

        ``dtype``: ``float32`` (exact), ``bfloat16`` or ``auto`` (bfloat16 where the CPU has it natively).
        """
        model_dir = Path(model_dir)
        meta = artifact.read_metadata(model_dir)
        if backend not in BACKEND_CHOICES:
            raise ConfigError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, but got backend={backend!r}.")
        runner = TorchBackend.from_dir(model_dir, inference_dtype(dtype))
        config = runner.model.config
        try:
            tokenizer = load_tokenizer(str(model_dir))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the tokenizer ({exc}).") from exc
        labels = LabelSet.from_config(config.id2label, integer=(meta or {}).get("label_type") == "int")
        max_len = (meta or {}).get("max_seq_length") or min(tokenizer.model_max_length, 512)
        return cls(runner, tokenizer, labels, int(max_len), batch_size)

    # -- the three stages ---------------------------------------------------

    def preprocess(self, texts: Sequence[str]) -> list[list[int]]:
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"text {i + 1} is empty; expected a non-empty string to classify.")
        return encode(self.tokenizer, texts, self.max_seq_length)

    def forward(self, ids: list[list[int]]) -> np.ndarray:
        """Logits in input order; batches are built from texts of similar length."""
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        left = pads_left(self.backend.config, self.tokenizer)
        for rows in eval_batches([len(x) for x in ids], self.batch_size):
            batch = collate(ids, rows, self.tokenizer.pad_token_id, left)
            out[rows] = self.backend.forward(batch.input_ids, batch.attention_mask)
        return out

    @staticmethod
    def postprocess(logits: np.ndarray) -> np.ndarray:
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- public calls -------------------------------------------------------

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.forward(self.preprocess(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in label-id order."""
        return self.postprocess(self.logits(texts))

    def predict(self, texts: str | Sequence[str]) -> list[Prediction]:
        """Predictions for one text or many (always a list)."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self.predict_proba(texts)
        names = [self.labels.value(i) for i in range(len(self.labels))]
        return [
            Prediction(names[int(row.argmax())], [round(float(p), 6) for p in row], names) for row in probs
        ]
