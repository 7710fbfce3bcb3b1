"""Checkpoints: what a training run needs to go on exactly where it stopped, and where they live.

    .NAME.tmp-XXXXXXXX/          the output's hidden staging folder (textclf.artifact.staging)
        checkpoints/             the default folder; or --checkpoint-dir
            lock                 held (flock) by the run that writes here
            step-00000500.pt     one file per checkpoint; the newest --keep-checkpoints stay

A checkpoint is one ``torch.save`` file (read back with ``weights_only=True``, so loading one
runs no code). It holds the job it belongs to (:func:`job_identity`: the data files' sizes and
contents, the model's files, the hyperparameters, the number of processes), and a
resume of another job is refused with what differs (:func:`difference`). It is written to a
temporary file, flushed to disk and renamed into place, so each file is whole or absent. The
folder is removed when the run completes.

:func:`open_for` finds a run's checkpoint folder and the checkpoint to resume from (rank 0
finds and checks it, every process reads it). :class:`StopSignals` turns SIGINT and SIGTERM
into a request the loop answers at the next optimizer step: a checkpoint, then
:class:`~textclf.errors.TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import random
import shutil
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import __version__, artifact
from ..backends import file_sha256
from ..config import ADDED_HYPERPARAMETERS
from ..errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from ..config import RunOptions
    from .distributed import World

__all__ = [
    "Checkpoints",
    "StopSignals",
    "difference",
    "job_identity",
    "load",
    "open_for",
    "restore_rng",
    "rng_state",
    "to_device",
]

FORMAT_VERSION = 1
FOLDER = "checkpoints"


class Checkpoints:
    """A folder of checkpoints held by this run: atomic writes, rotation, the newest to resume from."""

    def __init__(self, folder: Path, keep: int):
        self.folder, self.keep = folder, keep
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{folder}: cannot create the checkpoint folder ({exc.strerror}); pass another --checkpoint-dir."
            ) from exc
        try:
            self._lock = (folder / "lock").open("w")
        except OSError as exc:
            raise ConfigError(
                f"{folder}: cannot write in the checkpoint folder ({exc.strerror}); pass another --checkpoint-dir."
            ) from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigError(
                f"{folder}: another `textclf train` is writing checkpoints there now; "
                "wait for it, or pass another --checkpoint-dir."
            ) from None

    @classmethod
    def left_by(cls, output: Path, keep: int) -> Checkpoints | None:
        """The default checkpoint folder of an unfinished run into ``output`` (the newest no live run holds)."""
        for stage in artifact.staging_folders(output):
            if _files(stage / FOLDER):
                try:
                    return cls(stage / FOLDER, keep)
                except ConfigError:  # a run writing into the same output right now
                    continue
        return None

    @classmethod
    def discard_left_by(cls, output: Path) -> None:
        """Remove the staging folders of unfinished runs into ``output`` that hold checkpoints (not live runs')."""
        for stage in artifact.staging_folders(output):
            if _files(stage / FOLDER):
                try:
                    cls(stage / FOLDER, 1).close()
                except ConfigError:  # a live run's
                    continue
                shutil.rmtree(stage, ignore_errors=True)

    def latest(self) -> Path | None:
        files = _files(self.folder)
        return files[-1] if files else None

    def save(self, state: dict, step: int) -> Path:
        """Write ``state`` as the checkpoint of ``step`` (replacing one of the same step), then drop the oldest."""
        path = self.folder / f"step-{step:08d}.pt"
        tmp = self.folder / f".{path.name}.tmp"
        try:
            with tmp.open("wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ArtifactError(
                f"{path}: cannot write this checkpoint ({exc.strerror or exc}); free some space or pass "
                "another --checkpoint-dir (--keep-checkpoints 0 writes none)."
            ) from exc
        for old in _files(self.folder)[: -self.keep]:
            old.unlink()
        return path

    def discard(self) -> None:
        """Remove every checkpoint (and any half-written one)."""
        for path in self.folder.iterdir():
            if path.name.startswith(("step-", ".step-")):
                path.unlink()

    def clear(self) -> None:
        """Remove every checkpoint and the lock: the run is complete (or deliberately abandoned)."""
        self.discard()
        (self.folder / "lock").unlink(missing_ok=True)
        self.close()
        try:
            self.folder.rmdir()
        except OSError:  # the user's folder holds other files too
            pass

    def close(self) -> None:
        self._lock.close()

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_for(
    output: Path, options: RunOptions, job: dict, world: World, log: Callable[[str], None], cleanup: ExitStack
) -> tuple[Checkpoints | None, dict | None]:
    """Rank 0's checkpoint folder, held until ``cleanup`` (None: none yet, or no checkpoints) and,
    in every process, the checkpoint to resume from (None: start afresh)."""
    store, path, state = world.on_main(lambda: _find(output, options, job, log, cleanup)) or (None, None, None)
    path = world.broadcast(None if path is None else str(path))  # the others read it once rank 0 found it is this job's
    if path is not None and world.size > 1:
        problem = None
        if not world.is_main and not Path(path).is_file():  # another machine, which does not share rank 0's folder
            problem = f"{path}: no such file on that process's machine."
        elif not world.is_main:
            try:
                state = load(Path(path))
            except ArtifactError as exc:
                problem = str(exc)
        problems = [p for p in world.gather(problem) if p]
        if problems:
            raise ArtifactError(
                f"{len(problems)} of the {world.size} training processes cannot read the checkpoint: {problems[0]} "
                "With several machines, pass a --checkpoint-dir that all of them can read at the same path."
            )
    return store, state


def _find(
    output: Path, options: RunOptions, job: dict, log: Callable[[str], None], cleanup: ExitStack
) -> tuple[Checkpoints | None, Path | None, dict | None]:
    """The checkpoint folder, and this job's checkpoint to resume from and its path (rank 0's part of open_for)."""
    if not options.keep_checkpoints:
        return None, None, None
    if options.checkpoint_dir is not None:
        store = cleanup.enter_context(Checkpoints(Path(options.checkpoint_dir), options.keep_checkpoints))
        if options.resume is False:
            store.discard()
    elif options.resume is False:
        Checkpoints.discard_left_by(output)
        return None, None, None
    else:
        found = Checkpoints.left_by(output, options.keep_checkpoints)
        store = found and cleanup.enter_context(found)
    path = store.latest() if store is not None else None
    if path is None:
        if options.resume:
            where = options.checkpoint_dir or f"the staging folders of {output}"
            raise ConfigError(
                f"resume: no checkpoint of an unfinished run in {where}; leave out --resume to start afresh."
            )
        return store, None, None
    state = load(path)
    why = difference(state["job"], job)
    if why:
        raise ConfigError(
            f"{path}: this checkpoint belongs to another training job: {why}. Run that job's "
            "command to resume it, or pass --no-resume to discard it and start afresh."
        )
    log(f"resuming from {path}: epoch {state['epoch']}, step {state['step']}")
    return store, path, state


def load(path: Path) -> dict:
    """A checkpoint file's contents, tensors on the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ArtifactError(
            f"{path}: cannot read this checkpoint ({exc}); delete it to resume from an older one, "
            "or pass --no-resume to start over."
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: not a textclf checkpoint of format {FORMAT_VERSION}; pass --no-resume to start over."
        )
    return state


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("step-*.pt")) if folder.is_dir() else []


# -- what a checkpoint belongs to ---------------------------------------------------------------


def job_identity(data, validation, read_options, source, hyperparameters, processes: int) -> dict:
    """What decides a run's result: textclf's version, the data and model files, the hyperparameters, the processes."""
    model = Path(source.location)
    return {
        "textclf": __version__,
        "processes": processes,
        "model": source.spec if source.kind == "hub" else str(model.resolve()),
        "model_files": _stamps(model) if source.kind != "hub" else None,
        "data": str(Path(data).resolve()),
        "data_files": _stamps(Path(data)),
        "validation": None if validation is None else str(Path(validation).resolve()),
        "validation_files": None if validation is None else _stamps(Path(validation)),
        "read_options": dataclasses.asdict(read_options),
        "hyperparameters": hyperparameters.to_dict(),
    }


def difference(old: dict, new: dict) -> str | None:
    """What differs between the job a checkpoint belongs to and this one, in words, or None.

    A hyperparameter the checkpoint predates counts as the value its run had (ADDED_HYPERPARAMETERS)."""
    if old["processes"] != new["processes"]:
        return (
            f"it was written by {old['processes']} training process(es) and this run has {new['processes']} "
            f"(the data order and per-process state depend on it); resume with --nproc {old['processes']}"
        )
    for name in ("hyperparameters", "read_options"):
        for key, value in new[name].items():
            was = old[name].get(key, ADDED_HYPERPARAMETERS.get(key, _UNSET) if name == "hyperparameters" else None)
            if was != value:
                return f"it was run with {key}={_shown(was)}, not {_shown(value)}"
    for name, what in (("data", "training data"), ("validation", "validation data"), ("model", "model")):
        if old[name] != new[name]:
            return f"its {what} is {old[name]}, not {new[name]}"
        if old[f"{name}_files"] != new[f"{name}_files"]:
            return f"the {what} {new[name]} changed since (file sizes or contents)"
    if old["textclf"] != new["textclf"]:
        return f"it was written by textclf {old['textclf']}, this is {new['textclf']}"
    return None


_UNSET = object()
"""A hyperparameter a checkpoint does not record (and is not in ADDED_HYPERPARAMETERS)."""


def _shown(value) -> str:
    """A hyperparameter's value as the user writes it: None is auto."""
    return "no value" if value is _UNSET else "auto" if value is None else repr(value)


def _stamps(path: Path) -> list:
    """[name, size, SHA-256] of ``path``, or of every file under it: by content, not modification time, so a
    copy of the same files resumes (a SageMaker job restarted on a new machine downloads its channels again)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size, file_sha256(p)] for p in files]


# -- per-process state ------------------------------------------------------------------------------


def rng_state(device: torch.device) -> dict:
    """This process's random number generators: torch (CPU and this GPU), numpy's global one, Python's."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [name, key.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def to_device(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor in it (in dicts, lists and tuples) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


# -- SIGINT / SIGTERM ----------------------------------------------------------------------------------


class StopSignals:
    """While active, SIGINT and SIGTERM ask training to stop at its next optimizer step instead of killing it.

    ``requested`` names the signal once one came; the next one is ignored while the run writes its
    checkpoint (``--nproc`` delivers a Ctrl-C twice: from the terminal and from the launcher), and
    a third gets the signal's usual effect (Ctrl-C: KeyboardInterrupt) for a run that does not reach
    its next step. The handler only sets flags, and ``announce`` writes straight to file descriptor
    2, not through Python's buffered stderr, which the interrupted code may be writing to. Inactive
    off the main thread, or with ``enabled=False`` (no checkpoints to write: a signal then stops
    the run at once, as usual).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    FORCE_AFTER = 3

    def __init__(self, enabled: bool, announce: bool = False):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.announce = announce
        self.requested: str | None = None
        self._received = 0
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        self._received += 1
        if self._received >= self.FORCE_AFTER:
            self.__exit__()
            signal.raise_signal(signum)
            return
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            if self.announce:
                os.write(
                    2,
                    f"{self.requested}: stopping after this optimizer step, once a checkpoint is written "
                    f"(a third signal stops at once)\n".encode(),
                )
