"""The report's figures, each an inline ``<svg>`` string with a fixed id (``fig-...``) the page and tests find.

Every figure draws a summary (counts, bins, epochs), never a mark a row, so its size does not grow with
the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from ._svg import Plot, nice_ticks

__all__ = [
    "cartography",
    "class_balance",
    "confusion",
    "length_histogram",
    "loss_curves",
    "reliability",
    "score_curves",
]

MAX_BARS = 60  # classes drawn in the balance chart; more are summed into one "others" bar
_HEAT_LEVELS = 20  # opacity steps of a heatmap cell


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def class_balance(names: Sequence[str], counts: Sequence[int], id: str = "fig-class-balance") -> str:
    """Horizontal bars: rows a class (multi-label: rows that have the label), with each one's share."""
    pairs = list(zip(names, counts))
    if len(pairs) > MAX_BARS:
        pairs = sorted(pairs, key=lambda p: -p[1])
        rest = pairs[MAX_BARS - 1 :]
        pairs = pairs[: MAX_BARS - 1] + [(f"{len(rest)} others", sum(c for _, c in rest))]
    total = sum(counts) or 1
    top = max((c for _, c in pairs), default=1) or 1
    left = 12 + 7 * max(len(_short(str(n))) for n, _ in pairs)
    plot = Plot(id, (0, top * 1.25), (len(pairs), 0), "Class balance (training rows)", width=520,
                height=70 + 18 * len(pairs), margin=(30, 16, 40, left))  # fmt: skip
    plot.axes(x_label="rows", y_ticks=[])
    for i, (name, count) in enumerate(pairs):
        plot.rect(0, i + 0.15, count, i + 0.85, "bar s0", f"{name}: {count:,} rows ({count / total:.1%})")
        plot.text(plot.left - 5, plot.y(i + 0.5) + 4, _short(str(name)), "tick", anchor="end")
        plot.text(plot.x(count) + 4, plot.y(i + 0.5) + 4, f"{count:,} ({count / total:.0%})", "note")
    return plot.svg()


def length_histogram(lengths: np.ndarray, unit: str, max_length: int | None, id: str = "fig-lengths") -> str:
    """Text lengths in 40 bins up to the 99.5th percentile (longer ones in the last), the model's
    ``max_length`` marked."""
    upper = float(np.percentile(lengths, 99.5)) if len(lengths) else 1.0
    upper = max(upper, (max_length or 0) * 1.1, 8.0)
    edges = np.linspace(0, upper, 41)
    counts, _ = np.histogram(np.minimum(lengths, upper), edges)
    top = max(int(counts.max()), 1)
    plot = Plot(id, (0, upper), (0, top * 1.1), f"Text length ({unit})", width=520)
    plot.axes(x_label=f"{unit} a text (the last bar: {upper:.0f} or more)", y_label="texts")
    for k, count in enumerate(counts):
        if count:
            tip = f"{edges[k]:.0f}-{edges[k + 1]:.0f} {unit}: {count:,} texts"
            plot.rect(edges[k], 0, edges[k + 1], count, "bar s0", tip)
    if max_length:
        plot.vline(max_length, "marker", f"max_seq_length {max_length}")
    return plot.svg()


def _epoch_points(history: Sequence[dict]) -> list[float]:
    return [float(h["epoch"]) for h in history]


def _check_points(history: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """Mid-epoch checks where they fell (epoch - 1 + the share of the epoch's rows consumed) and their ``key``."""
    xs, ys = [], []
    for h in history:
        seen = h.get("samples_seen") or 0
        for check in h.get("checks") or ():
            if seen and check.get(key) is not None and "rows" in check:
                xs.append(h["epoch"] - 1 + check["rows"] / seen)
                ys.append(check[key])
    return xs, ys


def _epoch_ticks(epochs: Sequence[float]) -> list[float]:
    last = max(epochs, default=1)
    return [float(e) for e in range(1, int(last) + 1)] if last <= 12 else nice_ticks(1, last)


def loss_curves(history: Sequence[dict], loss_name: str, id: str = "fig-loss") -> str:
    """Training and validation loss by epoch; mid-epoch checks' validation loss as dots."""
    epochs = _epoch_points(history)
    series = [("s0", "train loss", [h.get("train_loss") for h in history])]
    if any(h.get("val_loss") is not None for h in history):
        series.append(("s1", "validation loss", [h.get("val_loss") for h in history]))
    check_x, check_y = _check_points(history, "val_loss")
    values = [v for _, _, ys in series for v in ys if v is not None] + check_y
    plot = Plot(id, (min(0.0, min(epochs) - 1), max(epochs)), (0, max(values, default=1) * 1.1 or 1), "Loss")
    plot.axes(x_label="epoch", y_label=loss_name, x_ticks=_epoch_ticks(epochs), y_format=lambda v: f"{v:.2g}")
    for cls, _, ys in series:
        plot.line(epochs, ys, cls)
    if check_x:
        plot.dots(check_x, check_y, "s1 check", r=2)
    plot.legend([(cls, name) for cls, name, _ in series])
    return plot.svg()


def score_curves(history: Sequence[dict], scores: Sequence[tuple[str, str]], id: str = "fig-score") -> str:
    """Validation scores (``(key, name)`` pairs) by epoch, 0 to 1; the first one's mid-epoch checks as dots."""
    epochs = _epoch_points(history)
    plot = Plot(id, (min(0.0, min(epochs) - 1), max(epochs)), (0, 1), "Validation")
    plot.axes(x_label="epoch", y_label="score", x_ticks=_epoch_ticks(epochs))
    for k, (key, _) in enumerate(scores):
        plot.line(epochs, [h.get(key) for h in history], f"s{k + 2}")
    check_x, check_y = _check_points(history, scores[0][0])
    if check_x:
        plot.dots(check_x, check_y, "s2 check", r=2)
    plot.legend([(f"s{k + 2}", name) for k, (_, name) in enumerate(scores)])
    return plot.svg()


def confusion(names: Sequence[str], matrix: np.ndarray, id: str = "fig-confusion") -> str:
    """A heatmap of counts (rows: true class, columns: predicted), each cell shaded by its share of the row;
    every cell carries ``data-true``, ``data-predicted`` and ``data-count``."""
    k = len(names)
    cell = max(8, min(44, 440 // max(k, 1)))
    label_width = 12 + 7 * max(len(_short(str(n), 16)) for n in names)
    size = label_width + cell * k
    plot = Plot(id, (0, k), (k, 0), "Confusion matrix", width=max(size + 20, 240), height=size + 40,
                margin=(34 + label_width - 12, max(20, 240 - size), 30, label_width))  # fmt: skip
    totals = matrix.sum(axis=1)
    parts = plot.parts
    plot.rect(0, 0, k, k, "matrix")
    plot.text(plot.x(k / 2), plot.height - 10, "rows: true class, columns: predicted", "note", anchor="middle")
    for i in range(k):
        for j in range(k):
            count = int(matrix[i, j])
            share = count / totals[i] if totals[i] else 0.0
            level = round(share * _HEAT_LEVELS) / _HEAT_LEVELS
            cls = "cell diag" if i == j else "cell"
            attrs = f' data-true="{i}" data-predicted="{j}" data-count="{count}" fill-opacity="{level:g}"'
            plot.rect(j, i, j + 1, i + 1, cls, f"true {names[i]}, predicted {names[j]}: {count:,} ({share:.1%})", attrs)
            if k <= 12 and count:
                style = "celltext dark" if level > 0.55 else "celltext"
                plot.text(plot.x(j + 0.5), plot.y(i + 0.5) + 4, f"{count:,}", style, anchor="middle")
    for i, name in enumerate(names):
        plot.text(plot.left - 5, plot.y(i + 0.5) + 4, _short(str(name), 16), "tick", anchor="end")
        x, y = plot.x(i + 0.5) + 4, plot.top - 5
        parts.append(
            f'<text class="tick" transform="translate({x:.1f} {y:.1f}) rotate(-60)">{escape(_short(str(name), 16))}'
            "</text>"
        )
    return plot.svg()


def reliability(bins: Sequence[dict], title: str, id: str) -> str:
    """The reliability diagram: each confidence bin's accuracy as a bar against the diagonal (perfect
    calibration), the gap to the bin's mean confidence shaded."""
    plot = Plot(id, (0, 1), (0, 1), title, width=330, height=320)
    plot.axes(
        x_label="confidence", y_label="accuracy", x_ticks=[0, 0.2, 0.4, 0.6, 0.8, 1], y_ticks=[0, 0.2, 0.4, 0.6, 0.8, 1]
    )
    for b in bins:
        if not b.get("count"):
            continue
        lower, upper, accuracy, confidence = b["lower"], b["upper"], b["accuracy"], b["confidence"]
        tip = (
            f"{lower:.2f}-{upper:.2f}: {b['count']:,} predictions, accuracy {accuracy:.3f}, confidence {confidence:.3f}"
        )
        plot.rect(lower, 0, upper, accuracy, "bar s0", tip)
        plot.rect(lower, min(accuracy, confidence), upper, max(accuracy, confidence), "gap")
    plot.parts.append(
        f'<line class="diagonal" x1="{plot.x(0):.1f}" y1="{plot.y(0):.1f}" x2="{plot.x(1):.1f}" y2="{plot.y(1):.1f}"/>'
    )
    return plot.svg()


def cartography(mean: np.ndarray, std: np.ndarray, id: str = "fig-cartography", grid: int = 25) -> str:
    """Dataset cartography (Swayamdipta et al., 2020): a training row's mean probability of its given label across
    epochs against its standard deviation, as a 2-D histogram (darker: more rows)."""
    x_top = max(0.5, float(np.nanmax(std)) if len(std) else 0.5)
    counts, x_edges, y_edges = np.histogram2d(std, mean, bins=grid, range=[[0, x_top], [0, 1]])
    top = counts.max() or 1
    plot = Plot(id, (0, x_top), (0, 1), "Dataset cartography (training rows)", width=380, height=340)
    plot.axes(x_label="variability (std across epochs)", y_label="confidence (mean)")
    for i in range(grid):
        for j in range(grid):
            if counts[i, j]:
                level = max(0.08, round(np.sqrt(counts[i, j] / top) * _HEAT_LEVELS) / _HEAT_LEVELS)
                tip = f"{int(counts[i, j]):,} rows"
                plot.rect(
                    x_edges[i], y_edges[j], x_edges[i + 1], y_edges[j + 1], "cell", tip, f' fill-opacity="{level:g}"'
                )
    plot.text(plot.x(0.01), plot.y(0.95), "easy to learn", "note")
    plot.text(plot.x(0.01), plot.y(0.03), "hard to learn", "note")
    plot.text(plot.x(x_top * 0.98), plot.y(0.5), "ambiguous", "note", anchor="end")
    return plot.svg()
