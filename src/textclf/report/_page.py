"""The page: one self-contained HTML file (inline CSS and SVG, no script, no external reference),
written atomically."""

from __future__ import annotations

import os
import uuid
from html import escape
from pathlib import Path

from ..errors import ArtifactError
from ._inputs import ReportInputs
from ._sections import SECTIONS, score

__all__ = ["render", "write_report"]

_CSS = """
:root{--ink:#1d2430;--muted:#5b6473;--line:#d8dde5;--bg:#fff;--soft:#f4f6f9;--bad:#b3261e}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg);
margin:0 auto;max-width:1180px;padding:8px 24px 48px}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px;
margin-top:32px}h3{font-size:15px;margin:18px 0 6px}
nav a{margin-right:12px;color:#2457a6;text-decoration:none}nav{margin:6px 0 12px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:var(--soft)}td.text{max-width:560px;font-size:12px;overflow-wrap:anywhere}
table.facts th{background:none;color:var(--muted);font-weight:normal}
tr.conflict td{background:#fdecea}.missing{color:var(--muted);font-style:italic}.headline{font-weight:600}
.figures{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.side{display:flex;gap:24px;flex-wrap:wrap}
svg.figure{background:#fff;border:1px solid var(--line);border-radius:4px}
svg text{font-family:system-ui,sans-serif;fill:var(--ink)}
.title{font-size:13px;font-weight:600}.tick{font-size:11px;fill:var(--muted)}.label{font-size:12px}
.note{font-size:10px;fill:var(--muted)}
.grid{stroke:#eceff3;stroke-width:1}.frame{fill:none;stroke:#aab2bf}
.s0{--c:#3b6fb6}.s1{--c:#e07b39}.s2{--c:#2e8b57}.s3{--c:#a0a83a}
.series{fill:none;stroke:var(--c);stroke-width:2}.dot,.key,.bar{fill:var(--c);stroke:none}.check{opacity:.6}
.marker{stroke:var(--bad);stroke-width:1.5;stroke-dasharray:4 3}
.gap{fill:var(--bad);fill-opacity:.25;stroke:var(--bad);stroke-width:.5}.diagonal{stroke:#888;stroke-dasharray:3 3}
.matrix{fill:#f4f6f9}.cell{fill:#3b6fb6;stroke:#fff;stroke-width:.5}.cell.diag{fill:#2e8b57}
.celltext{font-size:11px;fill:var(--ink)}.celltext.dark{fill:#fff}
footer{margin-top:36px;color:var(--muted);font-size:12px}
"""

_NAV = (
    ("overview", "Overview"),
    ("data", "Data"),
    ("training", "Training"),
    ("evaluation", "Evaluation"),
    ("calibration", "Calibration"),
    ("mistakes", "Mistakes"),
    ("label-errors", "Label errors"),
    ("cartography", "Training dynamics"),
    ("settings", "Settings"),
)


def render(inputs: ReportInputs) -> str:
    """The report's HTML."""
    scores = score(inputs)
    sections = [section(inputs, scores) for section in SECTIONS]
    body = "".join(sections)
    nav = "".join(f'<a href="#{id}">{escape(name)}</a>' for id, name in _NAV if f'<section id="{id}">' in body)
    title = escape(inputs.title)
    version = escape(str((inputs.metadata.get("versions") or {}).get("textclf", "")))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}: textclf report</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><nav>{nav}</nav>{body}"
        f"<footer>textclf {version} report; one file, no network.</footer></body></html>\n"
    )


def write_report(path: str | Path, inputs: ReportInputs) -> Path:
    """Write the report of ``inputs`` to ``path`` (a temporary file renamed into place); the path.

    >>> write_report("runs/reviews/report.html", report_for("runs/reviews", "test.csv"))  # doctest: +SKIP
    PosixPath('runs/reviews/report.html')
    """
    path = Path(path)
    page = render(inputs)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot write the report ({exc.strerror}); choose another --output.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
