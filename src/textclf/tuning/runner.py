"""Running trials: one trial is one ``textclf.train`` into ``OUTPUT/trials/NNNN``.

Each epoch's objective is reported to Optuna from the training loop's ``on_epoch`` hook, and
the pruner may stop the trial there (its half-built folder is removed, as for any interrupted
training). A worker runs trials one at a time until the study holds ``max_trials`` finished or
running ones, or the time is up; ``--parallel-trials K`` starts K such workers as processes,
each with 1/K of the CPU threads, all on the same study storage. Before each trial a worker
fails and queues again the trials of dead processes on this machine (:func:`recover`), so
a peer killed mid-trial is retried by whoever works on the study next.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna

from ..backends import threads_per_worker
from ..config import RunOptions
from ..progress import log_stderr
from .config import TuneConfig
from .study import EPOCHS_ATTR, counted, open_storage, open_study, recover_lost_trials, retry, worker_id

__all__ = ["TRIALS_DIR", "recover", "remove_partial", "run_workers", "trial_dir", "work"]

TRIALS_DIR = "trials"


def trial_dir(output: Path, number: int) -> Path:
    return output / TRIALS_DIR / f"{number:04d}"


def remove_partial(output: Path, number: int) -> None:
    """Remove the half-built folder a killed trial left (training's hidden staging folder)."""
    for folder in (output / TRIALS_DIR).glob(f".{number:04d}.tmp-*"):
        shutil.rmtree(folder, ignore_errors=True)


def recover(study: optuna.Study, storage: optuna.storages.RDBStorage, output: Path, log: Callable[[str], None]) -> None:
    """Queue again the trials left RUNNING by dead processes of this machine, and remove their half-built folders."""
    recovered = recover_lost_trials(study, storage)
    for number in recovered:
        remove_partial(output, number)
    if recovered:
        log(f"retrying trial(s) {', '.join(map(str, recovered))}, left running by a process that is gone")


class _Surplus(Exception):
    """This trial would exceed max_trials (another process started one first): give it up."""


class _Objective:
    """Train with the trial's parameters; report each epoch's objective; return the kept epoch's."""

    def __init__(self, config: TuneConfig, log: Callable[[str], None]):
        self.config, self.log = config, log
        self.current: optuna.Trial | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        from ..training import Run, TrainingHooks, train

        config, objective = self.config, self.config.settings.objective
        self.current = trial
        trial.set_user_attr("worker", worker_id())
        if counted(trial.study, before=trial.number) >= config.settings.max_trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus
        params = config.space.suggest(trial)
        hp = config.hyperparameters.updated(params, source=f"trial {trial.number}")
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        self.log(f"trial {trial.number}: {shown}")

        planned: dict[str, int] = {}

        def set_up(run: Run) -> None:  # the epochs are known once the auto values are chosen
            planned["epochs"] = run.hp.epochs
            trial.set_user_attr(EPOCHS_ATTR, run.hp.epochs)
            trial.set_user_attr("auto", {name: getattr(run.hp, name) for name in run.auto})

        def report(record: dict) -> None:
            value = record[objective]
            trial.report(value, record["epoch"])
            if record["epoch"] < planned["epochs"] and trial.should_prune():  # the last epoch: nothing to save
                self.log(f"trial {trial.number}: pruned after epoch {record['epoch']} ({objective} {value:.4f})")
                raise optuna.TrialPruned()

        result = train(
            config.data,
            trial_dir(config.output, trial.number),
            model=config.model,
            validation=config.validation,
            hyperparameters=hp,
            read_options=config.read_options,
            overwrite=True,
            progress=False,
            options=RunOptions(keep_checkpoints=0),  # a killed trial is retried from its start, as a new trial
            log=lambda line: self.log(f"trial {trial.number}: {line}"),
            on_epoch=report,
            hooks=TrainingHooks(after_setup=set_up),
        )
        value = result.best[objective]
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("metrics", {k: v for k, v in result.best.items() if k.startswith("val_")})
        self.log(f"trial {trial.number}: {objective} {value:.4f} (epoch {result.best_epoch})")
        return value


def work(config: TuneConfig, log: Callable[[str], None], offset: int = 0, threads: int | None = None) -> None:
    """Run trials on the study until it is full or ``config.settings.timeout`` (counted from now) has passed."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    storage = open_storage(config)
    study = open_study(config, offset, storage)
    objective = _Objective(config, log)
    deadline = None if config.settings.timeout is None else time.monotonic() + config.settings.timeout
    sampler = study.sampler
    while True:
        recover(study, storage, config.output, log)  # a peer killed mid-trial: its trial is counted no more
        if counted(study) >= config.settings.max_trials:
            break
        queued = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))  # retries first
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study) and not queued:
            log("every point of the grid has been tried")
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            log(f"time is up ({config.settings.timeout:g} s)")
            break
        objective.current = None
        try:
            study.optimize(objective, n_trials=1, timeout=left, catch=(_Surplus,))
        except KeyboardInterrupt:
            _requeue(study, objective.current)
            raise
        if objective.current is not None and _failed(study, objective.current.number):
            break  # _Surplus: the study is full


def run_workers(config: TuneConfig, log: Callable[[str], None]) -> None:
    """``config.settings.parallel_trials`` workers: this process alone, or that many spawned processes."""
    k = config.settings.parallel_trials
    if k == 1:
        work(config, log)
        return
    threads = threads_per_worker(k)
    log(f"running {k} trials at a time, {threads} CPU thread(s) each")
    with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(work, config, log_stderr, 1000 * (i + 1), threads) for i in range(k)]
        for future in futures:
            future.result()  # a worker's error (a TextclfError too) is raised here


def _failed(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial | None:
    """Trial ``number`` if it has failed, else None."""
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return next((t for t in failed if t.number == number), None)


def _requeue(study: optuna.Study, trial: optuna.Trial | None) -> None:
    """After Ctrl-C: Optuna has failed the running trial; queue its parameters for the next run."""
    frozen = None if trial is None else _failed(study, trial.number)
    if frozen is not None:
        retry(study, frozen)
