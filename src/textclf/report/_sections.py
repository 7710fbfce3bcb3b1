"""The report's sections in page order (:data:`SECTIONS`), each ``(inputs, scores) -> HTML``: the overview,
training curves, label errors, training dynamics and settings here; the data summary in ``_data``; the
evaluated rows' sections in ``_scored``."""

from __future__ import annotations

import numpy as np

from . import _figures as fig
from ._data import data_summary
from ._html import (
    MAX_LABEL_ERRORS,
    MAX_LISTED,
    TextCell,
    clip,
    esc,
    figure_row,
    fmt,
    html_table,
    para,
    section,
)
from ._inputs import ReportInputs
from ._scored import Scores, calibration, evaluation, mistakes, score

__all__ = ["SECTIONS", "score"]


def overview(inputs: ReportInputs, scores: Scores | None) -> str:
    """What the model is and what it was trained and evaluated on; the notes of training and of this report."""
    meta = inputs.metadata
    data = meta.get("data") or {}
    facts = [
        ("task", inputs.labels.task),
        ("labels", ", ".join(inputs.labels.names)),
        ("base model", (meta.get("base_model") or {}).get("spec", "–")),
        ("trained", meta.get("created", "–")),
        ("training data", f"{data.get('train_source', '–')} ({fmt(data.get('train_rows'))} rows)"),
        ("validation data", f"{data.get('validation_source') or '–'} ({fmt(data.get('validation_rows'))} rows)"),
        (
            "evaluated data",
            f"{scores.rows.source or scores.rows.name} ({len(scores.rows):,} rows)"
            if scores
            else "none: pass --data FILE",
        ),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    notes = "".join(f"<li>{esc(n)}</li>" for n in [*inputs.notes, *(data.get("notes") or [])])
    return section(
        "overview", "Overview", f'<table class="facts">{rows}</table>' + (f"<ul>{notes}</ul>" if notes else "")
    )


def training(inputs: ReportInputs, scores: Scores | None) -> str:
    """Loss and validation scores by epoch (mid-epoch checks as dots), and the table of epochs."""
    history = inputs.history
    if not history:
        return section(
            "training", "Training", para("No training history (metrics.jsonl) in the model folder.", "missing")
        )
    multi = "val_micro_f1" in history[0]
    loss_name = "binary cross-entropy" if multi else "cross-entropy"
    scores_drawn = (
        [("val_micro_f1", "micro F1"), ("val_macro_f1", "macro F1")]
        if multi
        else [("val_accuracy", "accuracy"), ("val_f1", "macro F1")]
    )
    svgs = [fig.loss_curves(history, loss_name)]
    if any(h.get(scores_drawn[0][0]) is not None for h in history):
        svgs.append(fig.score_curves(history, scores_drawn))
    best = (inputs.metadata.get("metrics") or {}).get("best_epoch")
    rows = [
        (
            h["epoch"] if h["epoch"] != best else f"{h['epoch']} (best)",
            fmt(h.get("train_loss")),
            fmt(h.get("val_loss")),
            *(fmt(h.get(key)) for key, _ in scores_drawn),
            len(h.get("checks") or ()),
            fmt(h.get("train_seconds"), 1),
        )
        for h in history
    ]
    headers = [
        "epoch",
        "train loss",
        "val loss",
        *(f"val {name}" for _, name in scores_drawn),
        "mid-epoch checks",
        "seconds",
    ]
    return section("training", "Training", figure_row(*svgs) + html_table(headers, rows, id="epochs"))


def label_errors(inputs: ReportInputs, scores: Scores | None) -> str:
    """The rows ``textclf find-label-errors`` flagged (its CSV's order), or nothing without ``--label-errors``."""
    if inputs.label_errors is None:
        return ""
    ranked = inputs.label_errors
    flagged = [r for r in ranked if r.get("flagged", "1").strip().lower() in ("1", "true", "yes")]
    shown = (flagged or ranked)[: MAX_LABEL_ERRORS if flagged else MAX_LISTED]
    table = html_table(
        ["line", "text", "given label", "suggested label", "score"],
        [(r["line"], TextCell(clip(r["text"])), r["given_label"], r["suggested_label"], r["score"]) for r in shown],
        id="label-errors-table",
    )
    if flagged:
        what = f"{len(flagged):,} of {len(ranked):,} ranked rows flagged by textclf find-label-errors"
    else:
        what = f"None of {len(ranked):,} ranked rows flagged by textclf find-label-errors; the ranking's top"
    more = f", the first {len(shown)}" if len(flagged or ranked) > len(shown) else ""
    intro = para(f"{what}, most likely mislabelled first{more}:")
    return section("label-errors", "Suspected label errors", intro + table)


def dynamics(inputs: ReportInputs, scores: Scores | None) -> str:
    """Dataset cartography and the training rows with the lowest mean confidence, or nothing without dynamics."""
    arrays = inputs.dynamics
    if arrays is None:
        return ""
    confidence = arrays["confidence"].astype(np.float64)
    seen = ~np.isnan(confidence).all(axis=0)
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(confidence[:, seen], axis=0), np.nanstd(confidence[:, seen], axis=0)
    if not seen.any():
        return ""
    lines = np.asarray(arrays["line"])[seen]
    hardest = np.argsort(mean, kind="stable")[:MAX_LISTED]
    train = inputs.train
    text_of = {train.line(i): t for i, t in enumerate(train.texts)} if train is not None else {}
    rows = [
        (int(lines[k]), TextCell(clip(text_of.get(int(lines[k]), "–"))), f"{mean[k]:.3f}", f"{std[k]:.3f}")
        for k in hardest
    ]
    intro = para(
        f"Each training row's probability of its given label at each of {confidence.shape[0]} epochs "
        "(Swayamdipta et al., 2020): rows the model never grew confident of (bottom left) are often mislabelled."
    )
    table = html_table(["line", "text", "mean confidence", "variability"], rows, id="hard-rows")
    return section(
        "cartography",
        "Training dynamics",
        intro + figure_row(fig.cartography(mean, std)) + "<h3>Hardest rows</h3>" + table,
    )


def settings(inputs: ReportInputs, scores: Scores | None) -> str:
    """Hyperparameters (with why the automatic ones were chosen), the run, timings and versions."""
    meta = inputs.metadata
    if not meta:
        return section("settings", "Settings and versions", para("The model folder has no textclf.json.", "missing"))
    auto = meta.get("auto_hyperparameters") or {}
    hp = html_table(
        ["hyperparameter", "value", "chosen automatically because"],
        [(k, _json_value(v), auto.get(k, "")) for k, v in (meta.get("hyperparameters") or {}).items()],
        id="hyperparameters",
    )
    run = dict(meta.get("run") or {})
    if meta.get("training_seconds") is not None:
        run = {"training seconds": f"{meta['training_seconds']:.1f}", **run}
    run_table = html_table(["run", ""], [(k, _json_value(v)) for k, v in run.items()], id="run")
    versions = html_table(["package", "version"], list((meta.get("versions") or {}).items()), id="versions")
    return section(
        "settings", "Settings, timings and versions", hp + '<div class="side">' + run_table + versions + "</div>"
    )


def _json_value(value) -> str:
    """A textclf.json value for a table: floats short, None as ``auto``."""
    if isinstance(value, float):
        return f"{value:g}"
    return "auto" if value is None else str(value)


SECTIONS = (overview, data_summary, training, evaluation, calibration, mistakes, label_errors, dynamics, settings)
"""The sections in page order: each ``(inputs, scores) -> HTML`` ("" to leave itself out)."""
