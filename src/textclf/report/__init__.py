"""The report: one self-contained HTML page on a model and its data, to open in any browser.

``textclf train`` writes ``report.html`` into the model folder (:func:`training_report`);
``textclf report --model-dir DIR [--data FILE]`` writes it for any model folder and data
(:func:`report_for`, then :func:`write_report`). The page holds the data summary (class balance,
text lengths, duplicates inside and between data sets), the training curves, per-class scores and
the confusion matrix, calibration, the most confident mistakes, suspected label errors, dataset
cartography, and the settings, timings and versions. Its figures are inline SVG and its style
inline CSS: no script, no network, no other file.

The modules, in the order a report is made:

* ``_inputs``: :class:`ReportInputs` (what a report shows), :class:`Rows` (one labelled data set), and the
  readers of ``metrics.jsonl``, ``training_dynamics.npz``, an ``errors.csv`` and token lengths;
* ``_build``: :func:`report_for` and :func:`training_report`, which gather the inputs;
* :mod:`~textclf.report.duplicates`: exact and near-exact duplicates, inside and between sets;
* ``_svg`` (a plot area, axes and marks) -> ``_figures`` (each chart);
* ``_html`` (escaped tables and paragraphs, the caps on every list) -> ``_data`` (the data summary),
  ``_scored`` (per-class scores, confusion matrix, calibration, mistakes) -> ``_sections`` (every section,
  in page order) -> ``_page`` (the page, its CSS and :func:`write_report`).

>>> from textclf.report import report_for, write_report
>>> write_report("runs/reviews/report.html", report_for("runs/reviews", "test.csv"))  # doctest: +SKIP
PosixPath('runs/reviews/report.html')
"""

from __future__ import annotations

from ._build import report_for, training_report
from ._inputs import ReportInputs, Rows, read_label_errors
from ._page import render, write_report

__all__ = [
    "ReportInputs",
    "Rows",
    "read_label_errors",
    "render",
    "report_for",
    "training_report",
    "write_report",
]
