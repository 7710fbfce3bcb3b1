"""The Optuna study behind a tuning run: storage, sampler, pruner, and recovery of lost trials.

The study lives in a database (by default ``OUTPUT/study.db``, SQLite), so running the same
command again resumes it, and any process or machine given the same storage URL works on it.
A trial whose process died is failed and its parameters queued again, once it is known dead:
at once when it ran on this machine (its pid is gone), else when its heartbeat is older than
:data:`GRACE_SECONDS`.

A ``postgresql://`` URL is opened with psycopg 3 (``pip install 'textclf[postgres]'``) and a
:data:`CONNECT_TIMEOUT_SECONDS` connect timeout; errors name what to fix, with the password hidden.
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError
from .config import TuneConfig

__all__ = [
    "EPOCHS_ATTR",
    "FINISHED",
    "PeerMedianPruner",
    "counted",
    "is_retry_of",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "open_study",
    "recover_lost_trials",
    "retry",
    "shown_url",
    "worker_id",
]

HEARTBEAT_SECONDS, GRACE_SECONDS, MAX_RETRIES = 30, 120, 3
CONNECT_TIMEOUT_SECONDS = 10
"""How long opening a server database (PostgreSQL) may take before it fails; the URL's ``connect_timeout`` wins."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_IDENTITY = "textclf_tune"

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial failures reach the user as textclf errors

retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
"""Queues a failed trial's parameters again (at most MAX_RETRIES times), recording which trial it retries."""


def worker_id() -> str:
    """``host:pid`` of this process, stored with each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_sampler(config: TuneConfig, offset: int = 0) -> optuna.samplers.BaseSampler:
    """TPE (``bayesian``), random or grid; ``offset`` varies a fixed seed between processes and resumes."""
    seed = None if config.settings.seed is None else config.settings.seed + offset
    if config.settings.strategy == "grid":
        return optuna.samplers.GridSampler(config.space.grid(), seed=seed)
    if config.settings.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, config.settings.max_trials // 3))  # a short study still gets past random sampling
    return optuna.samplers.TPESampler(n_startup_trials=startup, constant_liar=True, seed=seed)


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    """Stops a trial whose per-epoch objective falls behind: never, the median rule, or Hyperband.

    The median rule compares a trial only with finished trials planned for as many epochs
    (``PeerMedianPruner``). The runner never asks at a trial's last epoch, where stopping saves nothing.
    """
    if config.settings.early_stopping_trials == "median":
        return PeerMedianPruner(n_startup_trials=config.settings.pruning_startup_trials)
    if config.settings.early_stopping_trials == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


EPOCHS_ATTR = "epochs"
"""The user attribute holding the epochs a trial is planned for (set before it trains)."""


class PeerMedianPruner(optuna.pruners.BasePruner):
    """Optuna's median rule among trials planned for the same number of epochs.

    The learning rate decays linearly to 0 over a trial's planned epochs, so epoch 1 of a 3-epoch
    trial (still at a high rate) is not comparable with the finished epoch 1 of a 1-epoch trial;
    comparing them prunes long trials that would have come out best. A trial is therefore judged,
    with ``optuna.pruners.MedianPruner``'s own rule and ``n_startup_trials``, against the finished
    trials that share its planned epochs.
    """

    def __init__(self, n_startup_trials: int = 2):
        self._median = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return self._median.prune(_Peers(study, trial.user_attrs.get(EPOCHS_ATTR)), trial)


class _Peers:
    """A read-only view of ``study`` whose ``get_trials`` holds only trials planned for ``epochs`` epochs."""

    def __init__(self, study: optuna.Study, epochs: int | None):
        self._study, self._epochs = study, epochs

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def get_trials(self, *args, **kwargs) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._study.get_trials(*args, **kwargs) if t.user_attrs.get(EPOCHS_ATTR) == self._epochs]


def open_storage(config: TuneConfig) -> RDBStorage:
    """The study's database (``config.storage_url``), with heartbeats that retry the trials of dead processes."""
    url = config.storage_url
    for attempt in range(1, 6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.x
                return RDBStorage(
                    _driver_url(url),
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=retry,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            if attempt == 5:  # not another process creating the same tables at the same moment (seen on PostgreSQL)
                raise _storage_error(url, exc) from exc
            time.sleep(0.2 + random.random())
        except Exception as exc:
            raise _storage_error(url, exc) from exc
    raise AssertionError("unreachable")


def _driver_url(url: str) -> str:
    """``postgresql://`` or ``postgres://`` with the driver of ``textclf[postgres]``, whatever SQLAlchemy's default."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _engine_kwargs(url: str) -> dict | None:
    """SQLite waits for a busy file; a server database gives up connecting after CONNECT_TIMEOUT_SECONDS."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgres") and "connect_timeout=" not in url:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}}
    return None


def shown_url(url: str) -> str:
    """``url`` with its password as ``***``, for messages and logs."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_study(config: TuneConfig, offset: int = 0, storage: RDBStorage | None = None) -> optuna.Study:
    """Create the study, or load it and check that it was made by the same command."""
    url = shown_url(config.storage_url)
    storage = storage or open_storage(config)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=config.settings.study_name,
            load_if_exists=True,
            direction="maximize" if config.settings.maximize else "minimize",
            sampler=make_sampler(config, offset),
            pruner=make_pruner(config),
        )
    except ConfigError:
        raise
    except Exception as exc:
        raise _storage_error(url, exc) from exc
    stored = study.user_attrs.get(_IDENTITY)
    wanted = config.identity()
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    if stored is None or (stored != wanted and not finished and stored["direction"] == wanted["direction"]):
        study.set_user_attr(_IDENTITY, wanted)  # new, or nothing finished yet: a corrected command takes over
    elif stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise ConfigError(
            f"study {config.settings.study_name!r} in {url} was started with another {', '.join(changed)}; "
            "run the same command to resume it, or choose another --output (or --study-name)."
        )
    if config.settings.seed is not None and study.trials:  # a resumed seeded study must not replay its first samples
        study.sampler = make_sampler(config, offset + len(study.trials))
    return study


_FIXES = (  # (words in the server's message, what to do); PostgreSQL's wording
    ("password authentication failed", "check the user name and password in the URL"),
    ("no password supplied", "give it in the URL (USER:PASSWORD@HOST), PGPASSWORD or ~/.pgpass"),
    ("does not exist", "create it on the server (createdb --owner USER NAME) or fix the name in the URL"),
    ("no pg_hba.conf entry", "allow this machine and user in the server's pg_hba.conf"),
    ("connection refused", "check the host and port in the URL, and that the server is running there"),
    ("timeout expired", "check the host and port in the URL, and that this machine can reach the server"),
    ("resolve host", "check the host name in the URL"),
    ("translate host name", "check the host name in the URL"),
)


def _storage_error(url: str, exc: Exception) -> ConfigError:
    """The one-line error for a storage that cannot be opened: what went wrong and what to fix."""
    shown = shown_url(url)
    if isinstance(exc, ImportError):  # Optuna's wraps the driver's own, e.g. "No module named 'psycopg'"
        missing = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        if _driver_url(url).startswith("postgresql+psycopg://"):
            return ConfigError(
                f"--storage {shown}: the PostgreSQL driver (Python module {missing.name or 'psycopg'!r}) is not "
                "installed; pip install 'textclf[postgres]'."
            )
        return ConfigError(f"--storage {shown}: {missing}; install the database driver.")
    message = str(getattr(exc, "orig", None) or exc)
    reason = message.rpartition("FATAL:")[2] if "FATAL:" in message else message.rpartition("failed: ")[2]
    reason = " ".join(reason.strip().splitlines()[0].split()) if reason.strip() else type(exc).__name__
    fix = next((fix for words, fix in _FIXES if words in message.lower()), None)
    if fix is None:
        return ConfigError(f"--storage {shown}: cannot open the study ({type(exc).__name__}: {reason[:300]}).")
    return ConfigError(f"--storage {shown}: {reason[:300]}; {fix}.")


def recover_lost_trials(study: optuna.Study, storage: RDBStorage) -> list[int]:
    """Fail RUNNING trials of dead processes on this machine and queue their parameters again.

    ``storage`` is the study's (:func:`open_storage`). Returns the numbers of the trials recovered.
    Trials of other machines are left to the heartbeat check Optuna runs before each trial.
    """
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            failed = storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process failed it first (and queued it)
            continue
        if failed:
            retry(study, storage.get_trial(trial_id))
            recovered.append(trial.number)
    return recovered


def counted(study: optuna.Study, before: int | None = None) -> int:
    """Trials finished or running (what a study of N trials counts); with ``before``, only those numbered below it."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(1 for t in trials if before is None or t.number < before)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_retry_of(trial: FrozenTrial) -> int | None:
    """The number of the failed trial this one retries (what ``retry`` records), else None."""
    return trial.system_attrs.get("failed_trial")
