"""The Classifier: load a model folder once, classify texts fast.

A call is ``preprocess`` (tokenise, sort by length, pad per batch) ->
``forward`` (the backend, under ``inference_mode``) -> ``postprocess``
(softmax, or a sigmoid a label for a multi-label model, whose ``decide`` applies each
label's threshold). ``predict``, ``evaluate`` and the server share it.

    >>> from textclf import Classifier
    >>> clf = Classifier.load("out/reviews")  # doctest: +SKIP
    >>> clf.predict(["Great value, works as advertised."])[0].to_dict()  # doctest: +SKIP
    {'probabilities': [0.03, 0.97], 'labels': ['negative', 'positive'], 'predicted_label': 'positive'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import ModelFolder, TokenizerSettings
from .backends import Backend, Choice, TorchBackend, choose, cores, export_precision, open_backend, open_export
from .batching import encode, eval_batches, pad
from .data import LabelSet
from .errors import ConfigError, DataError, ModelError
from .metrics import sigmoid

__all__ = ["Classifier", "MultiLabelPrediction", "Prediction", "TextEncoder"]

DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class Prediction:
    """One text's result, in JumpStart's verbose shape."""

    predicted_label: int | str
    probabilities: list[float]
    labels: list[int | str]

    def to_dict(self) -> dict:
        return {"probabilities": self.probabilities, "labels": self.labels, "predicted_label": self.predicted_label}


@dataclass(frozen=True)
class MultiLabelPrediction:
    """One text's multi-label result: every label's sigmoid score and the labels at or above their thresholds."""

    predicted_labels: list[int | str]
    probabilities: list[float]
    labels: list[int | str]

    def to_dict(self) -> dict:
        return {"probabilities": self.probabilities, "labels": self.labels, "predicted_labels": self.predicted_labels}


@dataclass(frozen=True)
class TextEncoder:
    """Texts to unpadded token ids, truncated as in training, and how to pad them."""

    encode: Callable[[list[str]], list[list[int]]]
    pad_id: int
    pad_left: bool
    max_length: int
    truncation_side: str = "right"

    @property
    def settings(self) -> TokenizerSettings:
        """What an exported backend needs to tokenise the same way (``textclf export`` records it)."""
        return TokenizerSettings(
            self.max_length, int(self.pad_id), "left" if self.pad_left else "right", self.truncation_side
        )

    @classmethod
    def from_tokenizer(cls, tokenizer, max_length: int, pad_left: bool) -> TextEncoder:
        """From a transformers tokenizer (the torch backend and training)."""
        return cls(
            lambda texts: encode(tokenizer, texts, max_length),
            tokenizer.pad_token_id,
            pad_left,
            max_length,
            tokenizer.truncation_side,
        )

    @classmethod
    def from_file(cls, path: Path, settings: TokenizerSettings) -> TextEncoder:
        """From ``tokenizer.json`` and the settings ``textclf export`` recorded: the ``tokenizers``
        library alone, so exported backends never import transformers."""
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: cannot load the tokenizer ({exc}).") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(settings.max_seq_length, direction=settings.truncation_side)

        def encode(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in tokenizer.encode_batch(texts)] if texts else []

        return cls(encode, settings.pad_token_id, settings.pad_left, settings.max_seq_length, settings.truncation_side)


class Classifier:
    """A loaded text classifier. Build it with :meth:`load`."""

    def __init__(
        self,
        backend: Backend,
        encoder: TextEncoder,
        labels: LabelSet,
        batch_size: int = DEFAULT_BATCH_SIZE,
        choice: Choice | None = None,
        precision: str | None = None,
        thresholds: Sequence[float] | None = None,
        at_least_one: bool = False,
    ):
        self.backend = backend
        self.encoder = encoder
        self.labels = labels
        self.batch_size = batch_size
        self.choice = choice or Choice(backend.name, "given")
        self._precision = precision
        self.set_thresholds(thresholds, at_least_one=at_least_one)
        self.calibration: dict | None = None  # the model folder's record: its logits are already divided by T

    @property
    def temperatures(self) -> np.ndarray:
        """The temperature the model's logits were divided by (one a label for multi-label; 1: not calibrated):
        ``logits * temperatures`` are the uncalibrated logits."""
        record = self.calibration or {}
        return np.asarray(record.get("temperatures", [record.get("temperature", 1.0)]), dtype=np.float64)

    @classmethod
    def load(
        cls,
        model_dir: str | Path | ModelFolder,
        backend: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        dtype: str = "auto",
        threads: int | None = None,
        threshold: float | None = None,
        at_least_one: bool = False,
    ) -> Classifier:
        """Load a textclf model folder (or any Hugging Face classification folder, or a
        :class:`~textclf.artifact.ModelFolder` already read).

        ``backend``: ``torch``, an export made by ``textclf export`` (``torchscript``, ``onnx``,
        ``onnx-int8``), or ``auto``: the fastest verified export the folder has that suits this
        CPU, else torch (:attr:`choice` says which and why).
        ``dtype`` (torch only): ``float32`` (exact), ``bfloat16``, or ``auto``: bfloat16 where the CPU
        has it natively (with AMX, for batches of 256 tokens or more), float32 elsewhere.
        ``threads``: cores to compute on (default: all this process may use).
        Multi-label models: ``threshold`` (one for every label) replaces the thresholds training chose a
        label (``textclf.json``; 0.5 where it has none); ``at_least_one`` gives a text whose scores are all
        under their thresholds its top label instead of none.
        """
        folder = ModelFolder.read(model_dir)
        clf = cls._load(folder, backend, batch_size, dtype, threads)
        clf.set_thresholds(folder.thresholds, threshold, at_least_one)
        clf.calibration = folder.calibration
        return clf

    @classmethod
    def _load(cls, folder: ModelFolder, backend: str, batch_size: int, dtype: str, threads: int | None) -> Classifier:
        choice = choose(backend, folder)
        if choice.backend != "torch" and dtype == "bfloat16":
            raise ConfigError(
                f"dtype bfloat16 applies to the torch backend only, but the backend is {choice.backend}; "
                "pass --backend torch, or leave --dtype at auto for the export."
            )
        if choice.backend == "torch":
            return cls._load_torch(folder, batch_size, dtype, threads, choice)
        path = open_export(folder, choice.backend)
        if threads is not None and choice.backend == "torchscript":
            import torch

            torch.set_num_threads(threads)
        runner = open_backend(choice.backend, path, threads)
        encoder = TextEncoder.from_file(folder.tokenizer_file, folder.export_settings(choice.backend))
        precision = export_precision(choice.backend, folder.exports[choice.backend])
        return cls(runner, encoder, folder.labels, batch_size, choice, precision)

    @classmethod
    def _load_torch(
        cls, folder: ModelFolder, batch_size: int, dtype: str, threads: int | None, choice: Choice
    ) -> Classifier:
        import torch

        from .models import load_tokenizer, max_length, pads_left

        if threads is not None:
            torch.set_num_threads(threads)
        runner = TorchBackend.from_folder(folder, dtype)
        config = runner.model.config
        try:
            tokenizer = load_tokenizer(str(folder.path))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder.path}: cannot load the tokenizer ({exc}).") from exc
        max_len = folder.max_seq_length or max_length(config, tokenizer)
        encoder = TextEncoder.from_tokenizer(tokenizer, int(max_len), pads_left(config, tokenizer))
        return cls(runner, encoder, folder.labels, batch_size, choice)

    def set_thresholds(
        self, chosen: Sequence[float] | None, threshold: float | None = None, at_least_one: bool = False
    ) -> None:
        """A multi-label model's decision rule: ``threshold`` for every label when given, else ``chosen`` (one a
        label), else 0.5; ``at_least_one``: an empty prediction takes the top label."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1 (a sigmoid score), got {threshold:g}.")
        if (threshold is not None or at_least_one) and not self.labels.multi_label:
            raise ConfigError(
                "--threshold and --at-least-one apply to multi-label models; this one is single-label "
                "(its prediction is the top class)."
            )
        if chosen is not None and len(chosen) != len(self.labels):
            raise ModelError(f"textclf.json has {len(chosen)} thresholds for {len(self.labels)} labels.")
        per_label = [threshold] * len(self.labels) if threshold is not None else chosen
        self.thresholds = np.asarray(per_label if per_label is not None else [0.5] * len(self.labels), np.float64)
        self.at_least_one = at_least_one

    @property
    def precision(self) -> str:
        """What the network computes in: ``float32``, ``bfloat16``, ``auto (bfloat16 from 256 tokens)``,
        ``int8 (8-bit weights, per-channel)``..."""
        torch_precision = getattr(self.backend, "precision", None)
        if torch_precision is not None:
            return torch_precision.name
        return self._precision or "float32"

    def describe(self) -> dict:
        """How this classifier runs, and why: logged at load and answered by ``serve``'s ``/info``."""
        from .models import cpu_flags, int8_dot_flag, native_bf16_flag

        torch_precision = getattr(self.backend, "precision", None)
        flags = cpu_flags()
        return {
            "backend": self.choice.backend,
            "backend_reason": self.choice.reason,
            "precision": self.precision,
            "precision_reason": torch_precision.reason if torch_precision is not None else "the export's own",
            "batch_size": self.batch_size,
            "calibration": None if self.calibration is None else {"temperature": self.calibration["temperature"]},
            "cpu": {
                "bf16": native_bf16_flag(flags),
                "int8_dot": int8_dot_flag(flags),
                "avx2": "avx2" in flags,
                "cores": cores(),
            },
        }

    def summary(self) -> str:
        """One line: ``running on onnx-int8, int8 (8-bit weights, per-channel) (auto: ...)``."""
        return f"running on {self.choice.backend}, {self.precision} ({self.choice.reason})"

    # -- the three stages ---------------------------------------------------

    def preprocess(self, texts: Sequence[str]) -> list[list[int]]:
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"text {i + 1} is empty; expected a non-empty string to classify.")
        return self.encoder.encode(list(texts))

    def forward(self, ids: list[list[int]]) -> np.ndarray:
        """Logits in input order; batches are built from texts of similar length."""
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for rows in eval_batches([len(x) for x in ids], self.batch_size):
            input_ids, mask = pad([ids[r] for r in rows], self.encoder.pad_id, self.encoder.pad_left)
            out[rows] = self.backend.forward(input_ids, mask)
        return out

    def postprocess(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities: a softmax over the classes, or for multi-label a sigmoid a label."""
        if self.labels.multi_label:
            return sigmoid(logits)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """A multi-label model's predicted labels (a 0/1 row a text): the scores at or above their thresholds;
        with ``at_least_one`` a row with none takes its top label."""
        chosen = probs.astype(np.float64) >= self.thresholds  # as training chose them (metrics.choose_thresholds)
        if self.at_least_one:
            empty = ~chosen.any(axis=1)
            chosen[empty, probs[empty].argmax(axis=1)] = True
        return chosen

    # -- public calls -------------------------------------------------------

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.forward(self.preprocess(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in label-id order."""
        return self.postprocess(self.logits(texts))

    def predict(self, texts: str | Sequence[str]) -> list[Prediction] | list[MultiLabelPrediction]:
        """Predictions for one text or many (always a list): :class:`MultiLabelPrediction` for a multi-label model."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self.predict_proba(texts)
        names = [self.labels.value(i) for i in range(len(self.labels))]
        if self.labels.multi_label:
            rounded = [[round(float(p), 6) for p in row] for row in probs]
            return [
                MultiLabelPrediction([names[i] for i in np.flatnonzero(row)], scores, names)
                for scores, row in zip(rounded, self.decide(probs))
            ]
        return [Prediction(names[int(row.argmax())], [round(float(p), 6) for p in row], names) for row in probs]
