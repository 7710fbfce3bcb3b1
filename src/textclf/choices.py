"""The names settings choose among, in a module that imports nothing heavy.

``textclf serve --backend onnx-int8`` and ``textclf batch`` build their settings from these,
so they must not pull in PyTorch or transformers just to validate a flag.
"""

from __future__ import annotations

__all__ = ["AUTO_ORDER", "BACKENDS", "BACKEND_CHOICES", "DTYPES", "EXPORT_FILES", "EXPORT_FORMATS"]

BACKENDS = ("torch", "torchscript", "onnx", "onnx-int8")
BACKEND_CHOICES = ("auto", *BACKENDS)  # what --backend accepts; auto picks the fastest export the folder has
EXPORT_FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
EXPORT_FORMATS = tuple(EXPORT_FILES)
AUTO_ORDER = ("onnx-int8", "onnx", "torchscript", "torch")  # fastest first (bench/RESULTS.md, Batch)
DTYPES = ("auto", "float32", "bfloat16")  # auto: bfloat16 where the hardware has it natively
