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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import ModelFolder, TokenizerSettings
from .backends import Backend, Choice, TorchBackend, choose, cores, export_precision, open_backend, open_export
from .batching import encode, eval_batches, pad
from .data import LabelSet
from .errors import ConfigError, DataError, ModelError

__all__ = ["Classifier", "Prediction", "TextEncoder"]

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
    ):
        self.backend = backend
        self.encoder = encoder
        self.labels = labels
        self.batch_size = batch_size
        self.choice = choice or Choice(backend.name, "given")
        self._precision = precision

    @classmethod
    def load(
        cls,
        model_dir: str | Path | ModelFolder,
        backend: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        dtype: str = "auto",
        threads: int | None = None,
    ) -> Classifier:
        """Load a textclf model folder (or any Hugging Face classification folder, or a
        :class:`~textclf.artifact.ModelFolder` already read).

        ``backend``: ``torch``, an export made by ``textclf export`` (``torchscript``, ``onnx``,
        ``onnx-int8``), or ``auto``: the fastest verified export the folder has that suits this
        CPU, else torch (:attr:`choice` says which and why).
        ``dtype`` (torch only): ``float32`` (exact), ``bfloat16``, or ``auto``: bfloat16 where the CPU
        has it natively (with AMX, for batches of 256 tokens or more), float32 elsewhere.
        ``threads``: cores to compute on (default: all this process may use).
        """
        folder = ModelFolder.read(model_dir)
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
        return [Prediction(names[int(row.argmax())], [round(float(p), 6) for p in row], names) for row in probs]
