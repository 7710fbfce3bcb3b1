"""Run a batch job: plan it (or pick up its manifest), score its chunks, assemble each file.

One chunk is one ``Classifier.predict_proba`` call, which sorts the chunk's texts by length
into batches and returns rows in input order (for a multi-label model ``Classifier.decide`` then
applies each label's threshold). The model folder is read once, here (a
:class:`~textclf.artifact.ModelFolder`), and chunks are scored in this process or by
``workers`` spawned processes (each loads the model from that folder once, with the CPU's
threads split among them), or with ``engine="ray"`` by as many Ray actors (``_ray``); whoever scores a chunk
writes its parts (Ray's actors send them back, and this process writes them), and this process assembles a
file's ``.out`` (and ``.errors``) once all of the file's chunks are done. The order of the steps is what
makes a kill at any moment safe: see ``_manifest``.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..artifact import ModelFolder
from ..backends import threads_per_worker
from ..data import LabelSet, split_labels
from ..data.reader import Layout, read_records, resolve_layout
from ..errors import ConfigError, DataError
from ..evaluation import EvaluationReport
from ..metrics import binary_cross_entropy, classification_metrics, multilabel_metrics_from_counts
from ..progress import ProgressBar, log_stderr
from ._inputs import find_inputs
from ._manifest import FORMAT_VERSION, Workdir, check_output, difference, job_identity
from ._options import BatchOptions
from ._output import render
from ._plan import Chunk, job_chunks, plan_file, shard

EXIT_RECORD_ERRORS = 3


@dataclass(frozen=True)
class BatchResult:
    """What a job wrote: counts over this shard's files, and the evaluation when asked for."""

    output: Path
    files: int
    records: int
    errors: int
    error_files: tuple[str, ...]
    evaluation: EvaluationReport | None = None

    @property
    def exit_code(self) -> int:
        """0, or ``EXIT_RECORD_ERRORS`` (3) when some records went to ``.errors``."""
        return EXIT_RECORD_ERRORS if self.errors else 0


def run_batch(
    model_dir: str | Path | ModelFolder,
    input: str | Path,
    output: str | Path,
    options: BatchOptions = BatchOptions(),
    *,
    progress: bool | None = None,
    log: Callable[[str], None] = log_stderr,
    classifier=None,
) -> BatchResult:
    """Score every record of ``input`` (a file, folder or glob) into ``output/<name>.out``.

    Run it again after a kill and it resumes; the outputs are the bytes an uninterrupted run
    writes. ``classifier`` (a loaded :class:`textclf.Classifier`, used as it is: its backend
    and threads) skips loading the model in this process when ``options.workers`` is 1 and the
    engine is local.

        >>> result = run_batch("runs/reviews", "texts/*.jsonl", "scored")  # doctest: +SKIP
        >>> result.records, result.errors, result.exit_code  # doctest: +SKIP
        (120000, 0, 0)
    """
    folder, output = ModelFolder.read(model_dir), Path(output)  # a missing model folder stops here, before any work
    if (options.threshold is not None or options.at_least_one) and not folder.labels.multi_label:
        raise ConfigError(
            f"{folder.path}: --threshold and --at-least-one apply to multi-label models; this one is single-label "
            "(its prediction is the top class)."
        )
    if classifier is not None and (options.threshold is not None or options.at_least_one):
        classifier = copy.copy(classifier)  # the caller's keeps its rule; the copy gets new arrays, not changed ones
        classifier.set_thresholds(classifier.thresholds.tolist(), options.threshold, options.at_least_one)
    inputs = find_inputs(str(input), output)
    check_output(output)
    created = not output.exists()
    work = Workdir(output)
    work.lock()
    try:
        manifest = _run_job(work, folder, inputs, options, created, progress, log, classifier)
    finally:
        work.unlock()
    result = manifest["result"]
    report = _report(str(input), result) if options.evaluate else None
    return BatchResult(
        output, result["files"], result["records"], result["errors"], tuple(result["error_files"]), report
    )


def _run_job(
    work: Workdir,
    folder: ModelFolder,
    inputs,
    options: BatchOptions,
    created: bool,
    progress: bool | None,
    log: Callable[[str], None],
    classifier,
) -> dict:
    """Open (or start) the job in ``work``, score what is left of it, and return its complete manifest."""
    output = work.output
    try:
        manifest, layouts = _open_job(work, folder.path, inputs, options)
    except BaseException:
        if created:  # leave nothing behind but what was there
            shutil.rmtree(output, ignore_errors=True)
        raise
    if manifest["result"] is None:
        threads = threads_per_worker(options.workers)
        if manifest["threads"] != threads:
            log(
                f"{output}: warning: this run scores with {threads} thread(s) per process, the first with "
                f"{manifest['threads']} (another --workers or machine); the 6th digit of a few probabilities may "
                "differ from an uninterrupted run."
            )
        job = _Job(work, folder, [f.path for f in inputs], [f.name for f in inputs], layouts, options, classifier)
        mine = shard(job_chunks(manifest["chunks"]), *options.shard)
        manifest["result"] = job.run(mine, threads, progress, log)
        work.write(work.manifest, json.dumps(manifest))
    else:
        log(f"{output}: the job is already complete; nothing to do.")
    work.clear_work()
    return manifest


def _open_job(work: Workdir, model_dir: Path, inputs, options: BatchOptions) -> tuple[dict, list[Layout]]:
    """The manifest of the job in ``work`` (checked to be this job), or a new one with the job's plan."""
    identity = job_identity(model_dir, inputs, options)
    manifest = work.read_json(work.manifest)
    if manifest is not None:
        why = difference(manifest, identity)
        if why:
            raise ConfigError(
                f"{work.output}: holds another batch job ({why}); pass another --output, "
                "or delete the folder to start over."
            )
        layouts = [Layout.from_dict(values) for values in manifest["layouts"]]
        _check_labels(inputs, layouts, options)
        return manifest, layouts
    work.clear_work()
    layouts = [resolve_layout(f.path, options.read_options()) for f in inputs]
    _check_labels(inputs, layouts, options)
    plans = [plan_file(f.path, layout, options.encoding, options.chunk_size) for f, layout in zip(inputs, layouts)]
    manifest = {
        "format_version": FORMAT_VERSION,
        "job": identity,
        "layouts": [layout.to_dict() for layout in layouts],
        "chunks": plans,
        "threads": threads_per_worker(options.workers),
        "result": None,
    }
    work.write(work.manifest, json.dumps(manifest))
    return manifest, layouts


def _check_labels(inputs, layouts: list[Layout], options: BatchOptions) -> None:
    if not options.evaluate:
        return
    for f, layout in zip(inputs, layouts):
        if layout.label is None:
            what = "plain text lines carry no labels" if layout.format == "text" else "no label column or key was found"
            raise ConfigError(
                f"{f.path}: --evaluate needs labels, but {what}; pass --label-column, or leave out --evaluate."
            )


# -- the work -----------------------------------------------------------------


class _Job:
    """The chunks of one run and the files they make up."""

    def __init__(
        self,
        work: Workdir,
        folder: ModelFolder,
        paths: list[Path],
        names: list[str],
        layouts: list[Layout],
        options: BatchOptions,
        classifier,
    ):
        self.work, self.folder, self.paths, self.names = work, folder, paths, names
        self.layouts, self.options, self.classifier = layouts, options, classifier

    def run(self, chunks: list[Chunk], threads: int, progress: bool | None, log: Callable[[str], None]) -> dict:
        by_file: dict[int, list[Chunk]] = {}
        for chunk in chunks:
            by_file.setdefault(chunk.file, []).append(chunk)
        finished = {f for f in by_file if self._output(f, "out").is_file()}
        todo = [c for c in chunks if c.file not in finished and not self.work.part(c.file, c.index, "json").is_file()]
        done = sum(c.records for c in chunks) - sum(c.records for c in todo)
        if done:
            log(
                f"{self.work.output}: resuming; {done:,} of {sum(c.records for c in chunks):,} records "
                "were already scored."
            )
        if not chunks:
            log(
                f"{self.work.output}: shard {self.options.shard[0]}/{self.options.shard[1]} has no chunks "
                "(the job has fewer chunks than shards)."
            )
        waiting = {f: sum(1 for c in todo if c.file == f) for f in by_file if f not in finished}
        for f, count in waiting.items():
            if count == 0:  # scored before a kill, not yet assembled
                self._assemble(f, by_file[f])
        total = sum(c.records for c in chunks)
        with ProgressBar(progress, "scoring", total, rate_unit="records/s", completed=done) as update:
            for chunk in self._score(todo, threads, log):
                done += chunk.records
                update(done)
                waiting[chunk.file] -= 1
                if waiting[chunk.file] == 0:
                    self._assemble(chunk.file, by_file[chunk.file])
        summaries = [self.work.read_json(self.work.file_summary(f)) for f in by_file]
        return _merge_files(summaries, [self.names[f] for f in by_file])

    def _output(self, file: int, kind: str) -> Path:
        return self.work.output / f"{self.names[file]}.{kind}"

    def _assemble(self, file: int, chunks: list[Chunk]) -> None:
        """The file's summary, then ``.errors`` (if any), then ``.out``: ``.out`` existing means the file is done."""
        parts = [self.work.read_json(self.work.part(file, c.index, "json")) for c in chunks]
        self.work.write(self.work.file_summary(file), json.dumps(_merge_chunks(parts)))
        errors = [self.work.part(file, c.index, "errors") for c, part in zip(chunks, parts) if part["errors"]]
        if errors:
            self.work.concatenate(errors, self._output(file, "errors"))
        self.work.concatenate([self.work.part(file, c.index, "out") for c in chunks], self._output(file, "out"))
        shutil.rmtree(self.work.root / "parts" / str(file), ignore_errors=True)

    def _score(self, chunks: list[Chunk], threads: int, log: Callable[[str], None]) -> Iterator[Chunk]:
        """Score ``chunks`` (writing their parts); yield each as it is done, in any order."""
        if not chunks:
            return
        tasks = [Task(str(self.paths[c.file]), self.layouts[c.file], c) for c in chunks]
        if self.options.engine == "ray":
            from ._ray import score_on_ray  # the one import of Ray, and only for --engine ray

            yield from score_on_ray(tasks, self.folder, self.work, self.options, threads, log)
            return
        if self.options.workers > 1:
            yield from _in_processes(tasks, self.folder, self.work.output, self.options, threads)
            return
        scorer = Scorer(self.folder, self.options, threads, self.classifier)
        for task in tasks:
            write_parts(self.work, task.chunk, scorer.score(task))
            yield task.chunk


@dataclass(frozen=True)
class Task:
    """One chunk to score, with the file it is in and how that file is read."""

    path: str
    layout: Layout
    chunk: Chunk


class Parts(NamedTuple):
    """A scored chunk: its ``.out`` lines, its ``.errors`` lines, its counts and evaluation sums."""

    out: str
    errors: str
    summary: dict


def write_parts(work: Workdir, chunk: Chunk, parts: Parts) -> None:
    """Write a scored chunk's parts, its summary last: the summary on disk marks the chunk done."""
    if parts.errors:
        work.write(work.part(chunk.file, chunk.index, "errors"), parts.errors)
    work.write(work.part(chunk.file, chunk.index, "out"), parts.out)
    work.write(work.part(chunk.file, chunk.index, "json"), json.dumps(parts.summary))


class Scorer:
    """Scores chunks with one classifier (loaded on first use, on ``threads`` cores)."""

    def __init__(self, folder: ModelFolder, options: BatchOptions, threads: int, classifier=None):
        self.folder, self.options, self.threads, self.clf = folder, options, threads, classifier

    def score(self, task: Task) -> Parts:
        o, c = self.options, task.chunk
        if self.clf is None:
            from ..inference import Classifier

            self.clf = Classifier.load(
                self.folder,
                backend=o.backend,
                batch_size=o.batch_size,
                dtype=o.dtype,
                threads=self.threads,
                threshold=o.threshold,
                at_least_one=o.at_least_one,
            )
        records = [r for r, _, _ in read_records(Path(task.path), task.layout, o.encoding, c.start, c.end, c.line)]
        if len(records) != c.records:
            raise DataError(
                f"{task.path}: the file changed while the job ran ({len(records)} records from line {c.line}, "
                f"{c.records} when the job started); pass a new --output to score it again."
            )
        good = [r for r in records if r.problem is None]
        clf, multi = self.clf, self.clf.labels.multi_label
        labels = [clf.labels.value(i) for i in range(len(clf.labels))]
        texts = [r.text for r in good]
        if not good:
            logits = probs = np.zeros((0, len(labels)), dtype=np.float32)
        elif multi and task.layout.label is not None:  # predict_proba in two steps: the loss needs the logits
            logits = clf.logits(texts)
            probs = clf.postprocess(logits)
        else:
            logits, probs = None, clf.predict_proba(texts)
        decisions = clf.decide(probs) if multi else None
        out, errors = render(records, probs, labels, task.layout, o.output_format, o.join_source, decisions)
        evaluation = None
        if task.layout.label is not None:
            if multi:
                evaluation = _multi_label_evaluation(good, logits, decisions, clf.labels)
            else:
                evaluation = _evaluation(good, probs, clf.labels)
        summary = {
            "records": len(records),
            "errors": len(records) - len(good),
            "labels": labels,
            "backend": clf.backend.name,
            "precision": clf.precision,
            **_decision_rule(clf),
            "evaluation": evaluation,
        }
        return Parts(out, errors, summary)


# -- worker processes ---------------------------------------------------------

_worker: tuple[Scorer, Workdir] | None = None


def _in_processes(
    tasks: list[Task], folder: ModelFolder, output: Path, options: BatchOptions, threads: int
) -> Iterator[Chunk]:
    """Score ``tasks`` in ``options.workers`` spawned processes, at most two chunks each in flight."""
    pool = ProcessPoolExecutor(
        options.workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(folder, output, options, threads),
    )
    queue = iter(tasks)
    running: dict[Future, Task] = {}
    try:
        while True:
            while len(running) < 2 * options.workers and (task := next(queue, None)) is not None:
                running[pool.submit(_score_in_worker, task)] = task
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # re-raises a worker's error here
                yield running.pop(future).chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(folder: ModelFolder, output: Path, options: BatchOptions, threads: int) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it cancels the pool
    _worker = Scorer(folder, options, threads), Workdir(output)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a killed parent cannot stop its workers: they stop themselves
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _score_in_worker(task: Task) -> None:
    scorer, work = _worker
    write_parts(work, task.chunk, scorer.score(task))


# -- counts and evaluation ------------------------------------------------------


def _decision_rule(clf) -> dict:
    """The task the model does and, for a multi-label one, the thresholds it decides by (in the manifest)."""
    if not clf.labels.multi_label:
        return {"task": clf.labels.task}
    return {
        "task": clf.labels.task,
        "thresholds": [round(float(t), 6) for t in clf.thresholds],
        "at_least_one": bool(clf.at_least_one),
    }


def _single_id(label, labels: LabelSet) -> int | None:
    """A single-label record's label id; None when it has none, a list (multi-label data) or an unknown one."""
    if label is None or isinstance(label, list):
        return None
    return labels.id_of(label.strip())


def _label_ids(label, labels: LabelSet) -> tuple[int, ...] | None:
    """A multi-label record's label ids (a JSON list, or names joined by commas; empty: no label); None when
    it has no label field or one of its labels is not the model's."""
    if label is None:
        return None
    ids = [labels.id_of(name) for name in split_labels(label)]
    return None if None in ids else tuple(ids)


def _multi_label_evaluation(good, logits: np.ndarray, decisions: np.ndarray, labels: LabelSet) -> dict:
    """Sums over one chunk of a multi-label model: per label true/false positives and false negatives, exact
    matches, wrong cells, and summed binary cross-entropy of the records whose labels are all the model's."""
    ids = [_label_ids(r.label, labels) for r in good]
    rows = [i for i, y in enumerate(ids) if y is not None]
    true = labels.targets([ids[i] for i in rows]).astype(bool)
    pred = decisions[rows].astype(bool)
    return {
        "tp": (true & pred).sum(axis=0).tolist(),
        "fp": (~true & pred).sum(axis=0).tolist(),
        "fn": (true & ~pred).sum(axis=0).tolist(),
        "exact": int((true == pred).all(axis=1).sum()),
        "wrong_cells": int((true != pred).sum()),
        "loss_sum": binary_cross_entropy(logits[rows], true.astype(np.float64)) * len(rows) if rows else 0.0,
        "rows": len(rows),
        "unlabelled": len(good) - len(rows),
    }


def _evaluation(good, probs: np.ndarray, labels: LabelSet) -> dict:
    """Sums over one chunk: confusion matrix and summed cross-entropy of the records with a known label."""
    ids = [_single_id(r.label, labels) for r in good]
    rows = [i for i, y in enumerate(ids) if y is not None]
    y_true = np.asarray([ids[i] for i in rows], dtype=np.int64)
    p = probs[rows].astype(np.float64)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y_true, p.argmax(axis=1) if len(rows) else y_true), 1)
    p_true = np.clip(p[np.arange(len(rows)), y_true], np.finfo(np.float32).tiny, None)
    return {
        "confusion": confusion.tolist(),
        "loss_sum": float(-np.log(p_true).sum()),
        "rows": len(rows),
        "unlabelled": len(good) - len(rows),
    }


def _add_evaluations(parts: list[dict | None]) -> dict | None:
    """The sums of the parts' sums, key by key (a list or matrix elementwise)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return {
        key: np.sum([p[key] for p in parts], axis=0).tolist() if isinstance(value, list) else sum(p[key] for p in parts)
        for key, value in parts[0].items()
    }


_RULE = ("task", "thresholds", "at_least_one")


def _merge_chunks(parts: list[dict]) -> dict:
    return {
        "records": sum(p["records"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "labels": parts[0]["labels"],
        "backend": parts[0]["backend"],
        "precision": parts[0].get("precision"),
        **{key: parts[0][key] for key in _RULE if key in parts[0]},
        "evaluation": _add_evaluations([p["evaluation"] for p in parts]),
    }


def _merge_files(files: list[dict], names: list[str]) -> dict:
    return {
        "files": len(files),
        "records": sum(f["records"] for f in files),
        "errors": sum(f["errors"] for f in files),
        "error_files": [f"{name}.errors" for name, f in zip(names, files) if f["errors"]],
        "labels": files[0]["labels"] if files else None,
        "backend": files[0]["backend"] if files else None,
        "precision": files[0].get("precision") if files else None,
        **({key: files[0][key] for key in _RULE if key in files[0]} if files else {}),
        "evaluation": _add_evaluations([f["evaluation"] for f in files]),
    }


def _report(source: str, result: dict) -> EvaluationReport | None:
    """The same report as ``textclf evaluate``, from the job's summed confusion matrix and loss."""
    sums = result["evaluation"]
    if sums is None or sums["rows"] == 0:
        raise DataError(
            f"{source}: no record to evaluate; none has one of the model's labels "
            f"({', '.join(map(str, result['labels'] or []))})."
        )
    skipped = result["errors"] + sums["unlabelled"]
    if "tp" in sums:  # a multi-label model's sums
        loss, thresholds = sums["loss_sum"] / sums["rows"], [round(t, 4) for t in result["thresholds"]]
        metrics = multilabel_metrics_from_counts(
            sums["tp"], sums["fp"], sums["fn"], sums["exact"], sums["wrong_cells"], sums["rows"]
        )
        return EvaluationReport(
            source, result["labels"], sums["rows"], skipped, loss, metrics, result["backend"], thresholds
        )
    confusion = np.asarray(sums["confusion"])
    true, pred = np.nonzero(confusion)
    counts = confusion[true, pred]
    metrics = classification_metrics(np.repeat(true, counts), np.repeat(pred, counts), len(confusion))
    return EvaluationReport(
        source, result["labels"], sums["rows"], skipped, sums["loss_sum"] / sums["rows"], metrics, result["backend"]
    )
