"""The data section: class balance, text lengths, and duplicates inside and between the data sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _figures as fig
from ._html import (
    MAX_LISTED,
    TextCell,
    clip,
    esc,
    figure_row,
    html_table,
    label_name,
    para,
    section,
)
from ._inputs import ReportInputs, Rows
from .duplicates import Duplicates, find_duplicates

if TYPE_CHECKING:
    from ._scored import Scores

__all__ = ["data_summary"]


def data_summary(inputs: ReportInputs, scores: Scores | None) -> str:
    """Class balance, text lengths and duplicates of the training data (and the other sets)."""
    parts = [_class_balance(inputs)]
    if inputs.lengths is not None and len(inputs.lengths):
        parts.append(_lengths(inputs))
    else:
        parts.append(para("Text lengths: the training texts are not available.", "missing"))
    return section("data", "Data", "".join(parts) + _duplicates(inputs))


def _class_balance(inputs: ReportInputs) -> str:
    """The balance of the training rows, or of textclf.json's class counts without them."""
    names = list(inputs.labels.names)
    if inputs.train is not None:
        counts = np.zeros(len(names), np.int64)
        for label in inputs.train.labels:
            counts[list(label) if isinstance(label, tuple) else label] += 1
        counts = counts.tolist()
    else:
        recorded = (inputs.metadata.get("data") or {}).get("class_counts") or {}
        counts = [int(recorded.get(n, 0)) for n in names]
    if not any(counts):
        return para("Class balance: not recorded.", "missing")
    return figure_row(fig.class_balance(names, counts))


def _lengths(inputs: ReportInputs) -> str:
    """The length histogram and its figures: median, 95th percentile, longest, the share truncated."""
    lengths, unit, limit = inputs.lengths, inputs.length_unit, inputs.max_seq_length
    svg = fig.length_histogram(lengths, unit, limit if unit == "tokens" else None)
    stats = (
        f"{len(lengths):,} training texts: median {np.median(lengths):.0f} {unit}, 95th percentile "
        f"{np.percentile(lengths, 95):.0f}, longest {lengths.max():,}."
    )
    if limit and unit == "tokens":
        cut = int((lengths > limit).sum())
        stats += f" {cut:,} ({cut / len(lengths):.1%}) are longer than max_seq_length {limit} and are truncated."
    elif limit:
        stats += " (Words, not tokens: the model folder has no tokenizer.json to count tokens with.)"
    return figure_row(svg) + f'<p id="length-stats">{esc(stats)}</p>'


def _duplicates(inputs: ReportInputs) -> str:
    """Counts of duplicates inside each set and between sets, and capped lists of them."""
    if inputs.train is None:
        return "<h3>Duplicates</h3>" + para("Duplicates: the training texts are not available.", "missing")
    sets = [inputs.train, *inputs.others]
    found = find_duplicates([(s.name, s.texts, s.labels) for s in sets])
    by_name = {s.name: s for s in sets}
    summary = html_table(
        ["set", "rows", "exact extra copies", "near-exact extra copies", "groups with different labels"],
        [
            (
                s.name,
                f"{len(s):,}",
                found.extra(s.name, "exact"),
                found.extra(s.name, "near-exact"),
                found.conflicts(s.name),
            )
            for s in sets
        ],
        id="duplicates-summary",
    )
    across = html_table(
        ["set", "rows also in", "exact", "near-exact", "with a different label"],
        [
            (o.later, o.earlier, o.count("exact"), o.count("near-exact"), sum(1 for leak in o.leaks if leak.conflict))
            for o in found.across
        ],
        id="leaks-summary",
    )
    note = para(
        "Exact: the same string. Near-exact: the same after case folding and dropping punctuation and extra "
        "whitespace. A text of the validation or test data that is also in the training data makes its score "
        "optimistic; the same text under two labels is a label error or an undecidable text."
    )
    parts = ["<h3>Duplicates</h3>", note, summary]
    if found.across:
        parts += ["<h3>Shared between sets</h3>", across, _leak_examples(inputs, found, by_name)]
    parts.append(_group_examples(inputs, found, inputs.train))
    return "".join(parts)


def _group_examples(inputs: ReportInputs, found: Duplicates, rows: Rows) -> str:
    """The duplicate groups of ``rows``, those with different labels first."""
    groups = sorted(found.within[rows.name], key=lambda g: (not g.conflict, -len(g.rows), g.rows[0]))
    if not groups:
        return para(f"No duplicates inside {rows.name}.")
    shown = groups[:MAX_LISTED]
    table = html_table(
        ["kind", "lines", "labels", "text"],
        [
            (
                g.kind + (" (labels differ)" if g.conflict else ""),
                _lines(rows, g.rows),
                ", ".join(dict.fromkeys(label_name(inputs, rows.labels[r]) for r in g.rows)),
                TextCell(clip(rows.texts[g.rows[0]], 160)),
            )
            for g in shown
        ],
        id="duplicate-groups",
        attrs=[f'class="{"conflict" if g.conflict else ""}" data-kind="{g.kind}"' for g in shown],
    )
    more = f" (the first {len(shown)} of {len(groups):,}, different labels first)" if len(groups) > len(shown) else ""
    return f"<h3>Duplicate groups in {esc(rows.name)}{esc(more)}</h3>{table}"


def _leak_examples(inputs: ReportInputs, found: Duplicates, by_name: dict[str, Rows]) -> str:
    """The rows of a set whose text an earlier set holds, different labels first."""
    leaks = [(o, leak) for o in found.across for leak in o.leaks]
    if not leaks:
        return para("No text is shared between the sets.")
    leaks.sort(key=lambda p: (not p[1].conflict, p[1].kind != "exact"))
    shown = leaks[:MAX_LISTED]
    rows = []
    for overlap, leak in shown:
        later, earlier = by_name[overlap.later], by_name[overlap.earlier]
        rows.append(
            (
                f"{overlap.later} line {later.line(leak.row)}",
                f"{overlap.earlier} {_lines(earlier, leak.matches)}",
                leak.kind + (" (labels differ)" if leak.conflict else ""),
                f"{label_name(inputs, later.labels[leak.row])} / "
                + ", ".join(dict.fromkeys(label_name(inputs, earlier.labels[r]) for r in leak.matches)),
                TextCell(clip(later.texts[leak.row], 160)),
            )
        )
    table = html_table(
        ["row", "also at", "kind", "labels (row / there)", "text"],
        rows,
        id="leaks",
        attrs=[f'class="{"conflict" if leak.conflict else ""}" data-kind="{leak.kind}"' for _, leak in shown],
    )
    more = f" (the first {len(shown)} of {len(leaks):,})" if len(leaks) > len(shown) else ""
    return f"<h3>Shared texts{esc(more)}</h3>{table}"


def _lines(rows: Rows, indexes: Sequence[int], limit: int = 6) -> str:
    """``line 7`` or ``lines 2, 202`` (the first ``limit``, then how many more)."""
    lines = [str(rows.line(r)) for r in indexes[:limit]]
    more = f" +{len(indexes) - limit}" if len(indexes) > limit else ""
    return ("line " if len(indexes) == 1 else "lines ") + ", ".join(lines) + more
