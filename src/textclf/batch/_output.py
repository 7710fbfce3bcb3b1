"""The lines of ``<name>.out`` (JSON lines or header-less CSV) and ``<name>.errors``.

A JSON line is ``{"line", ["id",] "predicted_label", "probabilities", "labels", ["source"]}``:
the record's first line in its file, its ``--id-column`` value, JumpStart's verbose
prediction, and with ``--join-source`` the input record (the line of a text file, the object
of a JSONL file, the row of a CSV file as an object by header name, or as a list without a
header). A CSV line is ``line,[id,]predicted_label,p_0,...,p_K-1[,input fields...]``, the
shape ``serve`` answers ``text/csv`` with. An error line is ``{"line", "error"}``.
A multi-label model's JSON line has ``"predicted_labels"`` (a list, maybe empty) in place of
``"predicted_label"``, and its CSV line those labels joined by ``,`` in one (quoted) field.
Probabilities are rounded to 6 digits, as :class:`textclf.Prediction` does, so the same
record always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.reader import Layout, Record


def render(
    records: Sequence[Record],
    probabilities: np.ndarray,
    labels: list,
    layout: Layout,
    output_format: str,
    join_source: bool,
    decisions: np.ndarray | None = None,
) -> tuple[str, str]:
    """(``.out`` text, ``.errors`` text) of consecutive records; ``probabilities`` has a row per good record.

    ``decisions``: a multi-label model's (a bool row per good record, from ``Classifier.decide``); None for
    a single-label model, whose prediction is the top label."""
    out: list[Any] = []
    errors: list[str] = []
    rows = iter(probabilities)
    chosen_rows = iter(decisions) if decisions is not None else None
    for record in records:
        if record.problem is not None:
            errors.append(_json({"line": record.line, "error": record.problem}) + "\n")
            continue
        row = next(rows)
        if chosen_rows is None:
            predicted: Any = labels[int(row.argmax())]
        else:
            predicted = [labels[int(i)] for i in np.flatnonzero(next(chosen_rows))]
        rounded = [round(float(p), 6) for p in row]
        if output_format == "csv":
            ident = [] if layout.id is None else ["" if record.id is None else _cell(record.id)]
            source = _source_cells(record, layout) if join_source else []
            cell = predicted if chosen_rows is None else ",".join(str(label) for label in predicted)
            out.append([record.line, *ident, cell, *rounded, *map(_encodable, source)])
            continue
        line: dict[str, Any] = {"line": record.line}
        if layout.id is not None:
            line["id"] = record.id
        if chosen_rows is None:
            line.update(predicted_label=predicted, probabilities=rounded, labels=labels)
        else:
            line.update(predicted_labels=predicted, probabilities=rounded, labels=labels)
        if join_source:
            line["source"] = _source_value(record, layout)
        out.append(_json(line) + "\n")
    if output_format == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(out)
        return buffer.getvalue(), "".join(errors)
    return "".join(out), "".join(errors)


def _json(value: Any) -> str:
    """Compact JSON, UTF-8 text as is; \\u escapes only where a lone surrogate from the input needs them."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def _cell(value: Any) -> str:
    return _encodable(value) if isinstance(value, str) else _json(value)


def _encodable(value: Any) -> Any:
    """A CSV cell that UTF-8 can write: a string holding a lone surrogate (from a JSON ``\\ud800``
    escape) keeps its JSON escapes instead of failing the chunk on every resume."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)[1:-1]
    return value


def _source_value(record: Record, layout: Layout) -> Any:
    if layout.format in ("text", "label-text", "jsonl"):
        return record.source
    return dict(zip(layout.header, record.source)) if layout.header else record.source


def _source_cells(record: Record, layout: Layout) -> list[str]:
    if layout.format in ("text", "label-text"):
        return [record.source]
    if layout.format == "jsonl":
        return [_json(record.source)]
    return list(record.source)
