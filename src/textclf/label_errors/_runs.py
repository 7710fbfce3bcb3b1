"""The training runs of a job and the work folder that keeps their scores.

:class:`Runs` trains (:func:`textclf.train`) and scores: ``cross_fit`` K runs, each on the other
folds (:func:`stratified_folds`), scoring the fold it left out; ``whole`` one run on every row.
Each run's scores go to the work folder atomically (``folds-K/fold-k.npz``, ``whole.npz``:
``rows``, ``probs``, and its training dynamics as ``dyn_rows``, ``dyn_confidence``), so a killed
job resumes; :func:`open_work_dir` keeps them only while :func:`identity` (data file hash, model,
hyperparameters, read options) is unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import DYNAMICS_FILE
from ..config import Hyperparameters
from ..data import Examples, LabelSet, ReadOptions
from ..errors import ArtifactError, ModelError, TrainingInterrupted
from ..progress import ProgressBar

__all__ = ["DYNAMICS_FILE", "JOB_FILE", "Runs", "identity", "open_work_dir", "stratified_folds"]

JOB_FILE = "job.json"


def stratified_folds(given: Sequence[int], folds: int, seed: int) -> np.ndarray:
    """Each row's fold (0..folds-1): every class's rows shuffled (seeded) and dealt in turn, the deal going
    on from class to class so the folds' sizes differ by one at most."""
    given = np.asarray(given)
    fold = np.empty(len(given), dtype=np.int64)
    rng, offset = random.Random(seed), 0
    for label in sorted(set(given.tolist())):
        rows = np.flatnonzero(given == label).tolist()
        rng.shuffle(rows)
        fold[rows] = (offset + np.arange(len(rows))) % folds
        offset = (offset + len(rows)) % folds
    return fold


@dataclass
class Runs:
    """The training runs of one job, each leaving its scores in the work folder; ``trained`` and ``reused``
    count them."""

    examples: Examples
    labels: LabelSet
    given: np.ndarray
    work: Path
    model: str | Path | None
    hp: Hyperparameters
    keep_models: bool
    log: Callable[[str], None]
    trained: int = 0
    reused: int = 0

    def cross_fit(self, folds: int, progress: bool | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(out-of-sample probabilities, mean in-sample training confidence or None), rows in file order."""
        fold = stratified_folds(self.given, folds, self.hp.seed)
        folder = self.work / f"folds-{folds}"
        folder.mkdir(parents=True, exist_ok=True)
        n = len(self.given)
        probs = np.full((n, len(self.labels)), np.nan, dtype=np.float32)
        dyn_sum, dyn_count = np.zeros(n), np.zeros(n)
        done = [k for k in range(folds) if (folder / f"fold-{k + 1}.npz").is_file()]
        finished = len(done)
        with ProgressBar(progress, f"{folds} folds", folds, completed=finished) as update:
            for k in range(folds):
                scores = folder / f"fold-{k + 1}.npz"
                if k in done:
                    self.reused += 1
                    self.log(f"fold {k + 1}/{folds}: reusing its scores from {scores}")
                else:
                    held_out = np.flatnonzero(fold == k)
                    trained_on = np.flatnonzero(fold != k)
                    self._run(folder / f"fold-{k + 1}", trained_on, held_out, scores, f"fold {k + 1}/{folds}")
                    finished += 1
                    update(finished)
                with np.load(scores) as saved:
                    probs[saved["rows"]] = saved["probs"]
                    _add_dynamics(saved, dyn_sum, dyn_count)
        return probs, _mean_dynamics(dyn_sum, dyn_count)

    def whole(self, progress: bool | None) -> tuple[np.ndarray, np.ndarray]:
        """One run on every row (no validation split, so every row has dynamics): (the final model's
        probabilities, mean training confidence)."""
        scores = self.work / "whole.npz"
        if scores.is_file():
            self.reused += 1
            self.log(f"reusing the training run's scores from {scores}")
        else:
            rows = np.arange(len(self.given))
            hp = self.hp
            if hp.validation_split_ratio == Hyperparameters().validation_split_ratio:
                hp = hp.updated({"validation_split_ratio": 0.0}, source="find-label-errors")
            with ProgressBar(progress, "training", 1) as update:
                self._run(self.work / "whole", rows, rows, scores, "training", hp)
                update(1)
        n = len(self.given)
        dyn_sum, dyn_count = np.zeros(n), np.zeros(n)
        with np.load(scores) as saved:
            probs = saved["probs"]
            _add_dynamics(saved, dyn_sum, dyn_count)
        dyn = _mean_dynamics(dyn_sum, dyn_count)
        if dyn is None:
            raise ModelError(
                f"{self.work / 'whole'}: the training run recorded no training dynamics ({DYNAMICS_FILE}); "
                "use --method cross-fit."
            )
        return probs, dyn

    def _run(
        self,
        folder: Path,
        trained_on: np.ndarray,
        scored: np.ndarray,
        scores: Path,
        name: str,
        hp: Hyperparameters | None = None,
    ) -> None:
        """Train on the rows ``trained_on`` (unless the model folder is there already), score the rows ``scored``,
        keep both in ``scores`` (atomically), then remove the model folder unless asked to keep it."""
        import textclf

        from ..inference import Classifier

        data = folder.with_name(folder.name + ".train.jsonl")
        if not data.is_file():  # written once: a resumed run's checkpoint knows its size and time
            _write_atomic(data, "".join(self._jsonl(i) for i in trained_on.tolist()))
        names = self.work / "labels.txt"  # every run's head has every class, a rare one missing from its rows too
        if not names.is_file():
            _write_atomic(names, "".join(f"{name}\n" for name in self.labels.names))
        model_dir = folder / "model"
        if not (model_dir / "textclf.json").is_file():
            began = time.perf_counter()
            try:
                result = textclf.train(
                    data,
                    model_dir,
                    model=self.model,
                    hyperparameters=hp or self.hp,
                    read_options=ReadOptions(task="single-label", label_names=str(names)),
                    log=lambda _: None,
                    progress=False,
                )
            except TrainingInterrupted as exc:
                raise TrainingInterrupted(
                    f"stopped in {name}; its checkpoint and the finished folds are kept in {self.work}. "
                    "Run the same command again to resume."
                ) from exc
            self.trained += 1
            best = result.best.get("val_accuracy")
            val = f", val_accuracy {best:.4f}" if best is not None else ""
            self.log(
                f"{name}: trained on {len(trained_on):,} rows in {time.perf_counter() - began:.0f}s "
                f"({result.hyperparameters.epochs} epochs{val})"
            )
        clf = Classifier.load(model_dir, backend="torch", dtype="float32")
        columns = [clf.labels.id_of(name) for name in self.labels.names]
        probs = clf.predict_proba([self.examples.texts[i] for i in scored.tolist()])
        arrays = {"rows": scored.astype(np.int64), "probs": probs[:, [self._column(c, clf) for c in columns]]}
        arrays.update(self._dynamics(model_dir, trained_on))
        _save_atomic(scores, arrays)
        if not self.keep_models:
            shutil.rmtree(folder, ignore_errors=True)
            data.unlink(missing_ok=True)

    def _column(self, column: int | None, clf) -> int:
        if column is None:
            raise ModelError(f"the fold model's labels ({', '.join(clf.labels.names)}) miss one of the file's.")
        return column

    def _jsonl(self, row: int) -> str:
        record = {"text": self.examples.texts[row], "label": int(self.given[row])}  # an id into labels.txt
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _dynamics(self, model_dir: Path, trained_on: np.ndarray) -> dict[str, np.ndarray]:
        """The run's training dynamics as rows of the whole file: ``dyn_rows``, ``dyn_confidence`` (epochs x
        rows); nothing when the run recorded none."""
        path = model_dir / DYNAMICS_FILE
        if not path.is_file():
            return {}
        with np.load(path) as saved:
            lines, confidence = saved["line"], saved["confidence"]
        return {
            "dyn_rows": trained_on[lines - 1].astype(np.int64),  # line i of the run's file is its row i - 1
            "dyn_confidence": confidence.astype(np.float32).reshape(-1, len(lines)),
        }


def _add_dynamics(saved, total: np.ndarray, count: np.ndarray) -> None:
    """Add one run's per-epoch confidences (NaN: not trained on that epoch) into the running sums."""
    if "dyn_rows" not in saved:
        return
    rows, confidence = saved["dyn_rows"], saved["dyn_confidence"]
    seen = ~np.isnan(confidence)
    np.add.at(total, rows, np.where(seen, confidence, 0.0).sum(axis=0))
    np.add.at(count, rows, seen.sum(axis=0))


def _mean_dynamics(total: np.ndarray, count: np.ndarray) -> np.ndarray | None:
    if not count.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def identity(path: Path, hp: Hyperparameters, source, read_options: ReadOptions) -> dict:
    """What a fold's scores depend on (besides the folds, which name their own subfolder)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "data": str(path.resolve()),
        "data_sha256": digest.hexdigest(),
        "model": source.spec if source.kind == "hub" else str(Path(source.location).resolve()),
        "hyperparameters": hp.to_dict(),
        "read_options": dataclasses.asdict(read_options),
    }


def open_work_dir(work: Path, identity: dict, log: Callable[[str], None]) -> None:
    """Make ``work`` this job's: reuse it when it holds this job's folds, start it again when another's."""
    job = work / JOB_FILE
    if job.is_file():
        try:
            old = json.loads(job.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        changed = [key for key in identity if old.get(key) != identity[key]]
        if not changed:
            return
        log(f"{work}: its scores are of other {' and '.join(_WHAT[k] for k in changed)}; starting again")
        shutil.rmtree(work)
    elif work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise ArtifactError(
            f"{work}: exists and is not a find-label-errors work folder; remove it or pass another --work-dir."
        )
    try:
        work.mkdir(parents=True, exist_ok=True)
        _write_atomic(job, json.dumps(identity, indent=2) + "\n")
    except OSError as exc:
        raise ArtifactError(
            f"{work}: cannot create the work folder ({exc.strerror}); pass another --work-dir."
        ) from exc


_WHAT = {
    "data": "data",
    "data_sha256": "data (the file changed)",
    "model": "model",
    "hyperparameters": "hyperparameters",
    "read_options": "read options",
}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
