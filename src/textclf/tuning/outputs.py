"""What a study leaves in OUTPUT besides the trials: study.csv, plots, best/, and the summary.

``best/`` is a copy of the best trial's model folder, built beside it and renamed into place
(:func:`textclf.artifact.staging`), with the study's figures added to its ``textclf.json``
under ``tuning``; ``--keep-top K`` then removes the other trials' folders. Processes ending
the same study write these one at a time (:func:`publishing`), each from the trials stored then.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import artifact
from .config import TuneConfig
from .runner import trial_dir
from .study import is_retry_of

__all__ = [
    "BEST_DIR",
    "PLOTS",
    "STUDY_CSV",
    "keep_top",
    "publish_best",
    "publishing",
    "ranked",
    "render",
    "trial_rows",
    "trials_of",
    "write_plots",
    "write_study_csv",
]

BEST_DIR, STUDY_CSV, LOCK_FILE = "best", "study.csv", ".publish.lock"
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


@contextmanager
def publishing(output: Path) -> Iterator[None]:
    """Held while a process writes study.csv, the plots and best/: the last to take it has seen every trial."""
    with (output / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def trials_of(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials, less those given up because the study was already full."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]


def ranked(trials: list[FrozenTrial], config: TuneConfig) -> list[FrozenTrial]:
    """The complete ones of ``trials`` (:func:`trials_of`), best first."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(done, key=lambda t: (-t.value if config.settings.maximize else t.value, t.number))


def trial_rows(trials: list[FrozenTrial], config: TuneConfig) -> list[dict]:
    """One row a trial of ``trials`` (:func:`trials_of`): number, state, value, duration, each parameter, the trial
    it retries. Give it the list :func:`ranked` gets: other processes finish trials between two reads of a study."""
    names = config.space.names
    rows = []
    for t in trials:
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        row = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": None if duration is None else round(duration, 1),
            "epochs_run": max(t.intermediate_values, default=None),
            "retry_of": is_retry_of(t),
        }
        row.update({name: t.params.get(name) for name in names})
        rows.append(row)
    return rows


def write_study_csv(rows: list[dict], path: Path) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_plots(study: optuna.Study, output: Path, log: Callable[[str], None]) -> list[Path]:
    """Optuna's matplotlib figures as PNGs; importances need two complete trials and are skipped before."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    complete = [t for t in trials_of(study) if t.state == TrialState.COMPLETE]
    written = []
    for name, function in PLOTS.items():
        if not complete or (name == "param_importances.png" and len(complete) < 2):
            log(f"{name}: skipped ({len(complete)} complete trial(s))")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's notes on few trials; the figure is still right
                ax = getattr(vis, function)(study)
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            figure.savefig(output / name, dpi=100)
            written.append(output / name)
        except (ValueError, RuntimeError) as exc:  # e.g. importances when no parameter varied
            log(f"{name}: skipped ({exc})")
        finally:
            plt.close("all")
    return written


def publish_best(best: FrozenTrial, config: TuneConfig, log: Callable[[str], None]) -> Path | None:
    """Copy the best trial's folder to OUTPUT/best (atomically replacing an older best).

    None when the folder is not here: the trial ran on another machine with its own --output.
    """
    source = trial_dir(config.output, best.number)
    if not (source / artifact.METADATA_FILE).is_file():
        worker = best.user_attrs.get("worker", "another process")
        log(f"best/ not updated: trial {best.number}'s model folder {source} is not here (it ran on {worker}).")
        return None
    tuning = {
        "trial": best.number,
        "objective": config.settings.objective,
        "direction": config.settings.direction,
        "value": best.value,
        "params": best.params,
        "study_name": config.settings.study_name,
    }
    target = config.output / BEST_DIR
    if _tuning_of(target) == tuning:
        return target  # another process of the study published it already
    with artifact.staging(target, overwrite=True) as stage:
        shutil.copytree(source, stage, dirs_exist_ok=True)
        artifact.update_metadata(stage, tuning=tuning)
    return target


def _tuning_of(folder: Path) -> dict:
    """The ``tuning`` entry of a published best/ (empty when there is none)."""
    try:
        return json.loads((folder / artifact.METADATA_FILE).read_text(encoding="utf-8")).get("tuning") or {}
    except (OSError, ValueError):
        return {}


def keep_top(order: list[FrozenTrial], config: TuneConfig, log: Callable[[str], None]) -> None:
    """Remove the trial folders of complete trials outside the top ``config.settings.keep_top``."""
    for t in order[config.settings.keep_top :]:
        folder = trial_dir(config.output, t.number)
        if folder.exists():
            shutil.rmtree(folder)
            log(f"removed {folder} (not in the top {config.settings.keep_top})")


def render(rows: list[dict], order: list[FrozenTrial], config: TuneConfig, limit: int = 10) -> str:
    """The summary table: the best trials first, then counts by state."""
    names = config.space.names
    by_number = {r["number"]: r for r in rows}
    header = ["trial", config.settings.objective, "epochs run", "seconds", *names]
    table = [header]
    for t in order[:limit]:
        r = by_number[t.number]
        table.append(
            [
                str(t.number),
                f"{t.value:.4f}",
                str(r["epochs_run"]),
                f"{r['duration_s']:.0f}",
                *(_fmt(t.params.get(n)) for n in names),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    lines.append("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, bool) else str(value)
