"""Rows whose given label is likely wrong: ``textclf find-label-errors``.

A model cannot judge the labels it was trained on (it learns them), so every row is scored by
models that did not see it: the rows are dealt into K stratified, seeded folds, and K models,
each trained by :func:`textclf.train` on the other folds (the recipe of ``textclf train``,
with the user's hyperparameters), score the fold they left out. A row's score is how little
out-of-sample probability its given label got. Each fold run also records its training dynamics
(``training_dynamics.npz``: each training row's probability of its given label in every epoch,
"dataset cartography", Swayamdipta et al. 2020); ``combined`` averages the two, ``dynamics``
ranks by one run's dynamics alone (one training instead of K). On 4,000 SST-2 rows with 10% of
their labels flipped (``bench/label_errors.py``, docs/label-errors.md) ``combined`` ranked best
(precision at k 0.627, against 0.557 for ``cross-fit`` and cleanlab, 0.608 for ``dynamics``): the
default, :data:`DEFAULT_METHOD`.

A row is *flagged* by confident learning's rule (Northcutt et al. 2021): its suggested label's
out-of-sample probability reaches that class's threshold (the class's mean probability over the
rows labelled with it) and it is not the given label.

The work folder (``OUTPUT.folds/`` by default) makes a killed run resumable: each finished fold
leaves its scores there (``folds-K/fold-k.npz``, written atomically), a fold interrupted in
training resumes from its checkpoint, and ``job.json`` holds what the scores depend on (the data
file's SHA-256, the hyperparameters, the model, the read options); when that differs the
folder is started again. A fold's model folder is removed once its scores are kept.

Its modules: this one (the API, the ranking and flag rules, the checks, the CSV) and ``_runs``
(:class:`~._runs.Runs`: the training runs, the fold split, the work folder and its identity).

    >>> from textclf.label_errors import find_label_errors
    >>> found = find_label_errors("train.csv", "errors.csv", folds=5)  # doctest: +SKIP
    >>> found.flagged[0].line, found.flagged[0].given, found.flagged[0].suggested  # doctest: +SKIP
    (1834, 'positive', 'negative')
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Hyperparameters
from ..data import Examples, LabelSet, ReadOptions, read_examples
from ..errors import ArtifactError, ConfigError, DataError, ModelError
from ..progress import log_stderr
from ._runs import Runs, identity, open_work_dir, stratified_folds

__all__ = [
    "COLUMNS",
    "DEFAULT_FOLDS",
    "DEFAULT_METHOD",
    "METHODS",
    "LabelErrors",
    "Suspect",
    "confident_learning",
    "find_label_errors",
    "stratified_folds",
]

METHODS = ("combined", "cross-fit", "dynamics")
DEFAULT_METHOD = "combined"  # measured best: bench/label_errors.py, docs/label-errors.md
DEFAULT_FOLDS = 5
COLUMNS = (
    "rank",
    "line",
    "score",
    "flagged",
    "given_label",
    "suggested_label",
    "p_given",
    "p_suggested",
    "dynamics_confidence",
    "text",
)
_SHOWN = 60  # characters of a text in the printed table


@dataclass(frozen=True)
class Suspect:
    """One row of the ranking: ``score`` is how likely its given label is wrong (higher: more)."""

    rank: int
    line: int
    text: str
    given: str | int
    suggested: str | int
    score: float
    p_given: float  # out-of-sample probability of the given label (dynamics: the final model's, in-sample)
    p_suggested: float
    flagged: bool
    dynamics: float | None  # mean probability of the given label over the training passes that saw the row

    def to_row(self) -> list:
        """The CSV row, in :data:`COLUMNS` order."""
        dyn = "" if self.dynamics is None else f"{self.dynamics:.6f}"
        return [
            self.rank,
            self.line,
            f"{self.score:.6f}",
            int(self.flagged),
            self.given,
            self.suggested,
            f"{self.p_given:.6f}",
            f"{self.p_suggested:.6f}",
            dyn,
            self.text,
        ]


@dataclass
class LabelErrors:
    """What :func:`find_label_errors` found: every row, most suspect first, and how it got there.

    ``probabilities`` (rows x classes, in file order, columns in ``labels`` order) are the scores
    behind the ranking: out-of-sample for ``cross-fit`` and ``combined``, the final model's for
    ``dynamics``; ``dynamics`` is each row's mean training confidence in its given label (NaN where no
    run trained on it), or None when the runs recorded none.
    """

    rows: list[Suspect]
    labels: LabelSet
    method: str
    folds: int  # 0 for the single run of ``dynamics``
    output: Path | None
    work_dir: Path
    trained: int  # training runs this call made (finished folds reused are not counted)
    reused: int
    seconds: float
    probabilities: np.ndarray
    dynamics: np.ndarray | None

    @property
    def flagged(self) -> list[Suspect]:
        """The rows confident learning's rule flags, in rank order."""
        return [row for row in self.rows if row.flagged]

    def render(self, top: int = 10) -> str:
        """``flagged N of M rows ...`` and a table of the ``top`` ranked rows."""
        n, flagged = len(self.rows), len(self.flagged)
        runs = f"{self.folds} folds" if self.folds else "one training run"
        lines = [
            f"flagged {flagged:,} of {n:,} rows ({flagged / n:.1%}) as likely label errors ({self.method}, {runs})"
        ]
        if top > 0:
            lines.append(f"{'rank':>4}  {'line':>6}  {'score':>5}  flag  {'given -> suggested':<28}  text")
            for row in self.rows[:top]:
                change = f"{row.given} -> {row.suggested}"
                text = row.text if len(row.text) <= _SHOWN else row.text[: _SHOWN - 3] + "..."
                flag = "  * " if row.flagged else "    "
                lines.append(f"{row.rank:>4}  {row.line:>6}  {row.score:.3f}  {flag}  {change:<28}  {text}")
        if self.output is not None:
            lines.append(f"all {n:,} rows, ranked: {self.output}")
        return "\n".join(lines)


def find_label_errors(
    data: str | Path,
    output: str | Path | None = None,
    *,
    model: str | Path | None = None,
    folds: int = DEFAULT_FOLDS,
    method: str = DEFAULT_METHOD,
    hyperparameters: Hyperparameters | None = None,
    read_options: ReadOptions | None = None,
    work_dir: str | Path | None = None,
    keep_models: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = log_stderr,
) -> LabelErrors:
    """Rank the rows of the labelled file ``data`` by how likely their given label is wrong.

    ``method``: ``combined`` (K = ``folds`` trainings, each scoring the fold it left out; a row's
    out-of-sample probability of its given label averaged with its training dynamics in the runs that
    trained on it), ``cross-fit`` (the same runs, the out-of-sample probability alone) or ``dynamics``
    (one training on every row, ranked by its training dynamics). Writes ``output`` (a
    CSV of every row in rank order, :data:`COLUMNS`) when given; ``work_dir`` (default
    ``OUTPUT.folds`` next to it) keeps each finished fold's scores, so a rerun resumes.

        >>> found = find_label_errors("train.csv", "errors.csv", folds=3, epochs=2)  # doctest: +SKIP
        >>> print(found.render(top=3))  # doctest: +SKIP
    """
    started = time.perf_counter()
    hp = hyperparameters or Hyperparameters()
    read_options = read_options or ReadOptions()
    _check_settings(folds, method)
    output = Path(output) if output is not None else None
    if output is None and work_dir is None:
        raise ConfigError("find_label_errors needs an output file or a work_dir to keep its folds in.")
    work = Path(work_dir) if work_dir is not None else output.with_name(output.name + ".folds")
    if output is not None:
        _check_output(output, overwrite)
    examples, labels, given = _read(data, read_options)
    source = _check_model(model, labels, hp)
    if method != "dynamics":
        _note_rare_classes(folds, labels, given, log)
    open_work_dir(work, identity(examples.path, hp, source, read_options), log)
    runs = Runs(examples, labels, given, work, model, hp, keep_models, log)
    if method == "dynamics":
        probs, dyn = runs.whole(progress)
        score = 1.0 - np.where(np.isnan(dyn), probs[np.arange(len(given)), given], dyn)
        suggested = _best_other(probs, given)
        rows = np.arange(len(given))  # never learned: low confidence through training, another label at its end
        flagged = (np.nan_to_num(dyn, nan=1.0) < 0.5) & (probs[rows, suggested] > probs[rows, given])
    else:
        probs, dyn = runs.cross_fit(folds, progress)
        p_given = probs[np.arange(len(given)), given]
        if method == "combined" and dyn is not None:
            p_given = np.where(np.isnan(dyn), p_given, (p_given + dyn) / 2)
        score = 1.0 - p_given
        flagged, suggested = confident_learning(probs, given)
    rows = _rank(examples, labels, given, probs, dyn, score, flagged, suggested)
    if output is not None:
        _write_csv(output, rows)
    return LabelErrors(
        rows,
        labels,
        method,
        folds if method != "dynamics" else 0,
        output,
        work,
        runs.trained,
        runs.reused,
        time.perf_counter() - started,
        probs,
        dyn,
    )


# -- the rules ------------------------------------------------------------------------------------


def confident_learning(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, suggested label) a row, by confident learning's rule (Northcutt, Jiang and Chuang, JAIR 2021).

    Class j's threshold is the mean probability of j over the rows labelled j; a row's suggested label is
    the most probable class at or above its threshold. The row is flagged when there is one and it is not the
    given label. A row with no class over its threshold is not flagged; its suggestion is the most probable
    other label.

        >>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.8, 0.2]])  # thresholds 0.75 and 0.5
        >>> flagged, suggested = confident_learning(probs, np.array([0, 0, 1, 1]))
        >>> flagged.tolist(), suggested.tolist()
        ([False, False, False, True], [1, 1, 0, 0])
    """
    n, classes = probs.shape
    thresholds = np.array(
        [probs[given == j, j].mean() if np.any(given == j) else np.inf for j in range(classes)], dtype=np.float64
    )
    above = probs.astype(np.float64) >= thresholds
    candidate = np.where(above, probs, -np.inf).argmax(axis=1)
    has = above.any(axis=1)
    flagged = has & (candidate != given)
    suggested = np.where(flagged, candidate, _best_other(probs, given))
    return flagged, suggested


def _best_other(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The most probable label other than the given one, a row."""
    others = probs.astype(np.float64).copy()
    others[np.arange(len(given)), given] = -np.inf
    return others.argmax(axis=1)


def _rank(examples, labels, given, probs, dyn, score, flagged, suggested) -> list[Suspect]:
    """Every row, most suspect first (ties: file order)."""
    order = np.lexsort((np.asarray(examples.lines), -score))
    idx = np.arange(len(given))
    p_given, p_suggested = probs[idx, given], probs[idx, suggested]
    return [
        Suspect(
            rank,
            examples.lines[i],
            examples.texts[i],
            labels.value(int(given[i])),
            labels.value(int(suggested[i])),
            float(score[i]),
            float(p_given[i]),
            float(p_suggested[i]),
            bool(flagged[i]),
            None if dyn is None or np.isnan(dyn[i]) else float(dyn[i]),
        )
        for rank, i in enumerate(order.tolist(), 1)
    ]


# -- checks and the CSV --------------------------------------------------------------------------


def _check_settings(folds: int, method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    if method != "dynamics" and folds < 2:
        raise ConfigError(
            f"folds must be at least 2 (each row is scored by a model trained on the other folds), got {folds}."
        )


def _check_output(output: Path, overwrite: bool) -> None:
    """Fail before any training if ``output`` cannot be written."""
    if output.exists() and not overwrite:
        raise ArtifactError(f"{output}: already exists; pass --overwrite to replace it, or choose another --output.")
    if output.is_dir():
        raise ArtifactError(f"{output}: is a folder; --output is the CSV file to write.")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise ArtifactError(f"{parent}: no such folder for --output; create it or choose another --output.")
    if not os.access(parent, os.W_OK):
        raise ArtifactError(f"{parent}: not writable; choose another --output.")


def _read(data, read_options: ReadOptions) -> tuple[Examples, LabelSet, np.ndarray]:
    examples = read_examples(data, read_options)
    if examples.multi_label:
        why = f" ({examples.found_multi_label})" if examples.found_multi_label else ""
        raise DataError(
            f"{examples.path}: find-label-errors handles single-label files only, and this one is multi-label{why}."
        )
    labels = LabelSet.from_examples(examples, examples.label_names)
    given = np.asarray(labels.encode(examples, read_options.on_bad_rows), dtype=np.int64)
    return examples, labels, given


def _check_model(model, labels: LabelSet, hp: Hyperparameters):
    """The resolved model; a textclf model folder whose head would be kept must have the file's labels."""
    from ..models import resolve_model

    source = resolve_model(model)
    if source.kind != "artifact" or hp.reinitialize_top_layer == "true":
        return source
    from ..artifact import ModelFolder

    theirs = ModelFolder.read(source.location).labels
    if theirs.multi_label or set(theirs.names) != set(labels.names):
        what = "a multi-label model" if theirs.multi_label else f"labels {', '.join(theirs.names)}"
        raise ModelError(
            f"{source.location}: the model has {what}, the data {', '.join(labels.names)}; pass "
            "--reinitialize-top-layer true to train a fresh head on the data's labels, or another --model."
        )
    return source


def _note_rare_classes(folds: int, labels: LabelSet, given: np.ndarray, log: Callable[[str], None]) -> None:
    """Say which classes have fewer rows than folds: some fold runs train without any row of them, and a class of
    one row is scored by a model that never saw it (every run's head still has every class)."""
    counts = Counter(given.tolist())
    rare = sorted((v, labels.names[k]) for k, v in counts.items() if v < folds)
    if rare:
        shown = ", ".join(f"{name!r} ({count})" for count, name in rare[:8]) + (", ..." if len(rare) > 8 else "")
        log(
            f"{len(rare)} class(es) with fewer rows than the {folds} folds: {shown}; some runs train without "
            "them, so their rows rank as more suspect (a class of one row is scored by a model that never saw it)"
        )


def _write_csv(output: Path, rows: list[Suspect]) -> None:
    """The ranking as a CSV (written next to ``output``, then renamed into place)."""
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(row.to_row() for row in rows)
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArtifactError(f"{output}: cannot write the CSV ({exc.strerror}); choose another --output.") from exc
