"""Backends run the network: padded token ids in (int64 arrays), logits out (float32 array).

==============  =========================  ==================================================
backend         file in the model folder   runs on
==============  =========================  ==================================================
``torch``       model.safetensors          PyTorch + transformers (``dtype`` bfloat16 optional)
``torchscript`` model.torchscript.pt       PyTorch only (traced by ``textclf export``)
``onnx``        model.onnx                 ONNX Runtime only: no PyTorch, no transformers
``onnx-int8``   model.int8.onnx            ONNX Runtime, int8 weights (dynamic quantisation)
==============  =========================  ==================================================

The exported files take ``input_ids`` and ``attention_mask`` and return ``logits``; a
decoder's position ids are computed inside the graph, so every backend is fed the same way.
``textclf export`` records each verified file in ``textclf.json`` with its SHA-256, and a
file that no longer matches is refused here rather than run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from .artifact import ModelFolder
from .choices import AUTO_ORDER, BACKEND_CHOICES
from .errors import ModelError
from .validation import one_of

__all__ = [
    "Backend",
    "OnnxBackend",
    "TorchBackend",
    "TorchScriptBackend",
    "choose",
    "cores",
    "file_sha256",
    "fingerprint",
    "open_backend",
    "open_export",
    "threads_per_worker",
]


class Backend(Protocol):
    name: str

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


SOURCE_FILES = ("config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin")


def choose(backend: str, folder: ModelFolder) -> str:
    """The backend to run: ``backend`` itself, or for ``auto`` the fastest export ``folder`` holds
    (not one kept with ``--force`` despite failing its accuracy check), else torch."""
    exports = folder.exports
    if backend == "auto":
        return next(b for b in AUTO_ORDER if b == "torch" or (b in exports and not exports[b].get("forced")))
    one_of("backend", backend, BACKEND_CHOICES)
    return backend


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(model_dir: Path) -> dict:
    """SHA-256 of the files an export is made from (those the folder has)."""
    return {name: file_sha256(model_dir / name) for name in SOURCE_FILES if (model_dir / name).is_file()}


def open_export(folder: ModelFolder, backend: str) -> Path:
    """The verified export file for ``backend``; refuses one that is missing or changed since,
    or that was made from other weights, config or tokenizer than the folder now holds (a
    folder shipped with its exports only, without the weights, is fine)."""
    model_dir = folder.path
    record = folder.exports.get(backend)
    if record is None:
        raise ModelError(
            f"{model_dir}: has no {backend} export; create it with "
            f"`textclf export --model-dir {model_dir} --format {backend}`."
        )
    path = model_dir / record["file"]
    if not path.is_file():
        raise ModelError(f"{path}: missing, though textclf.json lists it; re-run `textclf export --format {backend}`.")
    if file_sha256(path) != record["sha256"]:
        raise ModelError(
            f"{path}: differs from the file `textclf export` verified (SHA-256 mismatch); "
            f"refusing to run it. Re-run `textclf export --format {backend}`."
        )
    for name, digest in record.get("source", {}).items():
        if (model_dir / name).is_file() and file_sha256(model_dir / name) != digest:
            raise ModelError(
                f"{path}: was exported from another {name} than {model_dir} now holds; "
                f"re-run `textclf export --format {backend}` (or pass --backend torch)."
            )
    return path


def open_backend(backend: str, path: Path, threads: int | None = None) -> Backend:
    """The runner of an export file (``torchscript``, ``onnx`` or ``onnx-int8``)."""
    return TorchScriptBackend(path) if backend == "torchscript" else OnnxBackend(path, backend, threads)


class TorchBackend:
    """The model as saved, run by PyTorch (on the CPU, or where training put it).

    ``dtype=torch.bfloat16`` runs the matrix products under bfloat16 autocast (weights stay
    fp32): about twice as fast on CPUs with native bfloat16, probabilities within ~1e-2.
    (Storing the Linear layers in bfloat16 up front gave the same numbers but made single-text
    calls ~25% slower in the serving benchmark, so weights are cast per call.)
    """

    name = "torch"

    def __init__(self, model, dtype=None):
        import torch

        self.model = model
        self.config = model.config
        self.dtype = dtype or torch.float32
        self.device = next(model.parameters()).device

    @classmethod
    def from_folder(cls, folder: ModelFolder, dtype=None) -> TorchBackend:
        """The folder's weights, loaded by transformers (refused unless it is a sequence classifier)."""
        model_dir = folder.path
        if not folder.is_classifier:
            raise ModelError(
                f"{model_dir}: not a text-classification model (architectures {folder.architectures or None}); "
                "fine-tune it first with `textclf train --model DIR`."
            )
        import torch
        from transformers import AutoModelForSequenceClassification

        from .models import quiet_transformers

        try:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the model ({exc}).") from exc
        return cls(model.eval(), dtype)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        from .models import forward_logits

        ids, mask = torch.from_numpy(input_ids).to(self.device), torch.from_numpy(attention_mask).to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16),
        ):
            return forward_logits(self.model, ids, mask).float().cpu().numpy()


class TorchScriptBackend:
    """A traced ``model.torchscript.pt``: PyTorch runs it without transformers' model code."""

    name = "torchscript"

    def __init__(self, path: Path):
        import torch

        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, OSError) as exc:
            raise ModelError(f"{path}: cannot load the TorchScript file ({exc}).") from exc

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).float().numpy()


class OnnxBackend:
    """An ONNX file run by ONNX Runtime on the CPU (all graph optimisations on)."""

    def __init__(self, path: Path, name: str = "onnx", threads: int | None = None):
        import onnxruntime as ort

        self.name = name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no optimiser warnings on stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc}).") from exc

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0].astype(
            np.float32, copy=False
        )


def threads_per_worker(workers: int) -> int:
    """Threads for each of ``workers`` processes sharing this machine: :func:`cores` split among them.

    Float sums come out in another order with another thread count, which can move the 6th
    digit of a probability: the same command on the same machine gives the same bytes.
    """
    return max(1, cores() // workers)


def cores() -> int:
    """CPUs this process may use: ``OMP_NUM_THREADS`` if set (as PyTorch reads it), else its affinity."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
