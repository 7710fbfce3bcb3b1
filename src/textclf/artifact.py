"""The textclf model folder: a plain Hugging Face folder plus ``textclf.json``.

Layout::

    DIR/
      config.json, model.safetensors, tokenizer files   # loadable by transformers
      textclf.json    # labels, hyperparameters, data summary, metrics, versions
      metrics.jsonl   # one JSON line per epoch, then one with the calibration's figures
      curves.png      # loss and accuracy by epoch
      training_dynamics.npz  # each training row's probability of its label, epoch by epoch
      report.html     # the training report: data, curves, errors, calibration

:class:`ModelFolder` reads a folder once (``textclf.json``, ``config.json``, the exports and
the tokenizer settings they recorded) without importing PyTorch or transformers; inference,
serving, batch, evaluation and export all start from it.

A folder is built in a hidden temporary sibling (``.DIR.tmp-XXXXXXXX``) and renamed into
place only when complete, so an interrupted run never leaves a folder that looks finished.
A run that can resume keeps its checkpoints in that sibling, which then outlives the
interruption and is picked up again (:func:`staging_folders`).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from .data import LabelSet
from .errors import ArtifactError, ModelError

__all__ = [
    "METADATA_FILE",
    "METRICS_FILE",
    "ModelFolder",
    "TokenizerSettings",
    "check_output",
    "read_metadata",
    "staging",
    "staging_folders",
    "update_metadata",
    "versions",
]

METADATA_FILE = "textclf.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
DYNAMICS_FILE = "training_dynamics.npz"
REPORT_FILE = "report.html"
FORMAT_VERSION = 1


def check_output(output: Path, overwrite: bool) -> None:
    """Fail before any work if ``output`` cannot receive a model folder."""
    if output.exists() and not overwrite:
        raise ArtifactError(f"{output}: already exists; pass --overwrite to replace it, or choose another --output.")
    if output.exists() and not output.is_dir():
        raise ArtifactError(f"{output}: exists and is not a folder; choose another --output.")
    if output.exists() and any(output.iterdir()) and not (output / METADATA_FILE).is_file():
        raise ArtifactError(f"{output}: is a non-empty folder that is not a textclf model; refusing to overwrite it.")
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{parent}: cannot create the output's parent folder ({exc.strerror}).") from exc
    if not os.access(parent, os.W_OK):
        raise ArtifactError(f"{parent}: not writable; choose another --output.")


def staging_folders(output: Path) -> list[Path]:
    """The temporary folders of runs into ``output`` that have not finished (or are running), newest first."""
    found = [p for p in output.parent.glob(f".{glob.escape(output.name)}.tmp-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


@contextmanager
def staging(
    output: Path, overwrite: bool, folder: Path | None = None, keep: Callable[[BaseException], bool] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``output`` (a new one, or ``folder``, one of
    :func:`staging_folders` to carry on with); move it into place on success.

    On any exception (including Ctrl-C) the temporary folder is removed, unless ``keep(exc)``
    says it holds work to resume, and ``output`` is left as it was.
    """
    check_output(output, overwrite)
    tmp = folder or output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(exist_ok=folder is not None)
    try:
        yield tmp
        (tmp / METADATA_FILE).stat()  # the metadata is written last: its presence marks completion
        if output.exists():
            old = output.parent / f".{output.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(output, old)
            try:
                os.replace(tmp, output)
            except BaseException:
                os.replace(old, output)  # put the previous model back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException as exc:
        if keep is None or not keep(exc):
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_metadata(folder: Path, metadata: dict) -> None:
    data = {"format_version": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    data.update(metadata)
    data["versions"] = versions()
    (folder / METADATA_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def update_metadata(folder: Path, **changes) -> None:
    """Set top-level keys of ``textclf.json`` (created if the folder has none), by atomic rename."""
    data = read_metadata(folder)
    if data is None:  # a plain Hugging Face folder gains a textclf.json
        data = {"format_version": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    data.update(changes)
    tmp = folder / f".{METADATA_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, folder / METADATA_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def read_metadata(folder: str | Path) -> dict | None:
    """``textclf.json`` of a model folder, or None for a plain Hugging Face folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: model folder not found; pass the --output folder of `textclf train`.")
    path = folder / METADATA_FILE
    if not path.is_file():
        if (folder / "config.json").is_file():
            return None
        raise ArtifactError(f"{folder}: not a model folder (no {METADATA_FILE} or config.json).")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt metadata ({exc}); retrain or restore the folder.") from exc


@dataclass(frozen=True)
class TokenizerSettings:
    """How texts become the ids the model saw: what ``textclf export`` records as an export's ``runtime``."""

    max_seq_length: int
    pad_token_id: int
    padding_side: str = "right"
    truncation_side: str = "right"

    @property
    def pad_left(self) -> bool:
        return self.padding_side == "left"

    @classmethod
    def from_dict(cls, values: dict) -> TokenizerSettings:
        return cls(
            int(values["max_seq_length"]),
            int(values["pad_token_id"]),
            values["padding_side"],
            values.get("truncation_side", "right"),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class ModelFolder:
    """A model folder, read once: its ``textclf.json`` (None for a plain Hugging Face folder) and
    ``config.json``, and what follows from them. Reading it imports neither PyTorch nor transformers.

        >>> folder = ModelFolder.read("out/reviews")  # doctest: +SKIP
        >>> folder.labels.names, sorted(folder.exports)  # doctest: +SKIP
        (('negative', 'positive'), ['onnx-int8'])
    """

    path: Path
    metadata: dict | None
    config: dict
    archive: Path | None = None  # the model.tar.gz ``path`` was unpacked from, if any

    @classmethod
    def read(cls, path: str | Path | ModelFolder) -> ModelFolder:
        """The folder at ``path`` (a folder already read is returned as it is). A ``model.tar.gz`` is read from
        the folder it unpacks to (:func:`textclf.packaging.unpacked`), so every command takes one."""
        if isinstance(path, ModelFolder):
            return path
        path, archive = Path(path), None
        if path.is_file():
            from .packaging import unpacked

            path, archive = unpacked(path), path.resolve()
        metadata = read_metadata(path)
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the model's config.json ({exc}).") from exc
        if not isinstance(config, dict):
            raise ModelError(f"{path}: cannot read the model's config.json (it is not a JSON object).")
        return cls(path, metadata, config, archive)

    @property
    def exports(self) -> dict[str, dict]:
        """``textclf export``'s records, by format (see :mod:`textclf.export`)."""
        return (self.metadata or {}).get("exports", {})

    def export_settings(self, format: str) -> TokenizerSettings:
        """The tokenizer settings ``textclf export`` recorded with the ``format`` export."""
        return TokenizerSettings.from_dict(self.exports[format]["runtime"])

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label model's decision threshold a label, as training chose them (None: 0.5 each)."""
        chosen = (self.metadata or {}).get("thresholds")
        if chosen is None:
            return None
        try:
            values = [float(t) for t in chosen["thresholds"]]
        except (TypeError, KeyError, ValueError) as exc:
            raise ModelError(
                f"{self.path / METADATA_FILE}: 'thresholds' must be {{\"thresholds\": [a number a label, 0..1], ...}} "
                f"({type(exc).__name__}: {exc})."
            ) from None
        if not all(0.0 <= t <= 1.0 for t in values):
            raise ModelError(f"{self.path / METADATA_FILE}: a threshold outside 0..1 in {values}.")
        return values

    @property
    def calibration(self) -> dict | None:
        """``textclf.json``'s ``calibration`` record (the temperature training folded into the output layer, and
        the figures before and after it), or None: not calibrated (``--no-calibration``, an older folder)."""
        record = (self.metadata or {}).get("calibration")
        if record is None:
            return None
        try:
            scales = [float(t) for t in record.get("temperatures", [record["temperature"]])]
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"{self.path / METADATA_FILE}: 'calibration' must be {{\"temperature\": a positive number, ...}} "
                f"({type(exc).__name__}: {exc})."
            ) from None
        if not all(t > 0 for t in scales):
            raise ModelError(f"{self.path / METADATA_FILE}: a calibration temperature that is not positive: {scales}.")
        return record

    @property
    def max_seq_length(self) -> int | None:
        """The length the model was trained with (None for a folder textclf did not train)."""
        return (self.metadata or {}).get("max_seq_length")

    @property
    def architectures(self) -> list[str]:
        return self.config.get("architectures") or []

    @property
    def is_classifier(self) -> bool:
        """True when ``config.json`` names a sequence-classification architecture."""
        return any(a.endswith("ForSequenceClassification") for a in self.architectures)

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "")

    @property
    def tokenizer_file(self) -> Path:
        """``tokenizer.json``: what exported backends tokenise with (the ``tokenizers`` library alone)."""
        return self.path / "tokenizer.json"

    @cached_property
    def labels(self) -> LabelSet:
        """The classes, from ``config.json``'s ``id2label`` (transformers' ``LABEL_i`` names when it has none)."""
        try:
            raw = self.config.get("id2label")
            if raw is None:  # as transformers' PretrainedConfig does
                raw = {i: f"LABEL_{i}" for i in range(int(self.config.get("num_labels", 2)))}
            id2label = {int(k): v for k, v in raw.items()}
            return LabelSet.from_config(
                id2label,
                integer=(self.metadata or {}).get("label_type") == "int",
                multi_label=self.config.get("problem_type") == "multi_label_classification",
            )
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ModelError(
                f"{self.path / 'config.json'}: cannot read the labels (id2label) from it ({exc})."
            ) from exc


def versions() -> dict:
    import tokenizers
    import torch
    import transformers

    from . import __version__

    return {
        "textclf": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
