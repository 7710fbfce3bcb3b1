"""The HTML pieces every section is built of; every piece of user text goes through :func:`esc`, and every
list is capped (:data:`MAX_LISTED`), so a report over 67,000 rows stays small."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ._inputs import ReportInputs

__all__ = [
    "MAX_LABEL_ERRORS",
    "MAX_LISTED",
    "TEXT_CHARS",
    "TextCell",
    "clip",
    "esc",
    "figure_row",
    "fmt",
    "html_table",
    "label_name",
    "para",
    "section",
]

MAX_LISTED = 20  # examples a list shows (duplicates, leaks, mistakes)
MAX_LABEL_ERRORS = 50
TEXT_CHARS = 300  # characters of a text shown in a table
_TEXT_CLASS = ' class="text"'


def esc(value) -> str:
    """``value`` as HTML text: every ``&``, ``<``, ``>`` and quote escaped."""
    return escape(str(value))


def fmt(value, digits: int = 4) -> str:
    """A figure for a table: ``digits`` decimals for a float, thousands separators for an int, ``–`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def clip(text: str, chars: int = TEXT_CHARS) -> str:
    """``text`` cut to ``chars`` characters, an ellipsis marking the cut."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence], id: str = "", attrs: Sequence[str] | None = None
) -> str:
    """A table of escaped cells; ``attrs``: extra attributes for each row's ``<tr>`` (already safe)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for k, row in enumerate(rows):
        extra = f" {attrs[k]}" if attrs else ""
        cells = "".join(f"<td{_TEXT_CLASS if isinstance(c, TextCell) else ''}>{esc(c)}</td>" for c in row)
        body.append(f"<tr{extra}>{cells}</tr>")
    ident = f' id="{esc(id)}"' if id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class TextCell(str):
    """A cell holding a data text (wraps, smaller type)."""


def section(id: str, title: str, body: str) -> str:
    """A ``<section>`` with its heading; ``body`` is HTML already."""
    return f'<section id="{id}"><h2>{esc(title)}</h2>{body}</section>'


def para(text: str, cls: str = "") -> str:
    """A paragraph of plain ``text``."""
    return f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def figure_row(*svgs: str) -> str:
    """Figures side by side, wrapping on a narrow window."""
    return f'<div class="figures">{"".join(svgs)}</div>'


def label_name(inputs: ReportInputs, label) -> str:
    """A label id's name; a multi-label row's tuple of ids as ``a,b`` (``(none)`` for no label)."""
    names = inputs.labels.names
    if isinstance(label, tuple):
        return ",".join(names[i] for i in label) or "(none)"
    return names[label]
