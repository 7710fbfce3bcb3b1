"""What ``textclf export`` is asked to do: its settings, apart from the exporter, so that reading
them (the CLI builds its flags from them at start-up) loads neither NumPy nor the model stack.
:mod:`textclf.export` does the work and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from .choices import EXPORT_FORMATS
from .options import setting
from .validation import check_fields

__all__ = ["FORMATS", "MAX_ACCURACY_DROP", "MAX_CHANGED", "WEIGHT_BITS", "ExportSettings", "QuantizationSettings"]

FORMATS = EXPORT_FORMATS
MAX_CHANGED = 0.02  # default share of validation predictions an export may change ...
MAX_ACCURACY_DROP = 0.005  # ... and accuracy it may lose (0.5 point)


WEIGHT_BITS = ("auto", "8", "7")


@dataclass(frozen=True)
class QuantizationSettings:
    """How ``onnx-int8`` is quantised (ONNX Runtime ``quantize_dynamic``), and what is done when the
    result fails its ``--validation`` check."""

    per_channel: bool = setting(
        True,
        "onnx-int8: one weight scale per output channel (keeps accuracy) or one per tensor.",
        negative="--per-tensor",
    )
    weight_bits: str = setting(
        "auto",
        "onnx-int8: 8-bit weights, which only CPUs with VNNI, AMX or dot-product instructions run exactly; "
        "7-bit, which every CPU runs; or auto: 8 where this CPU can run them, else 7.",
        choices=WEIGHT_BITS,
    )
    keep_fp32: tuple[str, ...] = setting(
        (), "onnx-int8: leave these layers in fp32 (repeatable; slower).", choices=("ffn_output", "classifier")
    )
    fallback: bool = setting(
        True,
        "onnx-int8 with --validation: if the export fails the check, keep the layers most sensitive to "
        "quantisation in fp32, fewest first, until it passes.",
        negative="--no-fallback",
    )


@dataclass(frozen=True)
class ExportSettings:
    """What ``textclf export`` writes and how it is verified: the command's flags, one field each."""

    format: str = setting(help="What to write: model.torchscript.pt, model.onnx or model.int8.onnx.", choices=FORMATS)
    validation: str | None = setting(
        None, "Labelled data: compare the export's predictions and accuracy with the PyTorch model's."
    )
    max_changed: float = setting(
        MAX_CHANGED, "Share of --validation predictions the export may change before it is refused.", low=0, high=1
    )
    max_accuracy_drop: float = setting(
        MAX_ACCURACY_DROP,
        "Accuracy on --validation the export may lose before it is refused (0.005 = half a point).",
        low=0,
        high=1,
    )
    force: bool = setting(False, "Keep an export that fails the --max-changed or --max-accuracy-drop check.")
    quantization: QuantizationSettings = setting(default_factory=QuantizationSettings, help="onnx-int8's settings.")

    def __post_init__(self) -> None:
        check_fields(self)
