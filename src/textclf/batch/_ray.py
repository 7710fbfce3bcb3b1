"""Score a batch job's chunks on Ray: ``textclf batch --engine ray [--ray-address ADDRESS]``.

The chunks the planner cut (``_plan``) become a Ray dataset, one row and one block per chunk,
and ``map_batches`` hands them to a fixed pool of ``--workers`` actors (one CPU each, anywhere
in the cluster). An actor is a :class:`~._job.Scorer`, the local engine's: it loads the model
once, on its first chunk, with ``threads`` threads (the local engine's per worker), reads the
chunk's records from the input file, and sends back the chunk's parts. This process writes them
through the job's working folder as they arrive (``_job.write_parts``), so the manifest, the
resume after a kill, the assembly of ``<name>.out`` and ``.errors`` and the progress bar are the
local engine's, and so are the bytes. The model folder and the inputs must therefore be at the
same paths on every node (a shared file system); ``--output`` only on this one.

Ray is started or joined here, and nowhere else in textclf is it imported. Its own logging is
turned down (no driver logs, no Ray Data progress bars or execution summaries): the job's
progress bar and its error lines are what the user sees. An actor that dies (its node lost)
is not restarted: the job stops, and the same command resumes it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import socket
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..artifact import ModelFolder
from ..backends import cores
from ..errors import ConfigError, TextclfError
from ._job import Parts, Scorer, Task, write_parts
from ._manifest import Workdir
from ._options import BatchOptions
from ._plan import Chunk

INSTALL = "pip install 'textclf[ray]'"
CONNECT_TIMEOUT_S = 60.0
"""How long joining a running cluster may take before the job gives up (ray.init itself waits forever)."""
_PROBE_TIMEOUT_S = 5.0


def score_on_ray(
    tasks: list[Task],
    folder: ModelFolder,
    work: Workdir,
    options: BatchOptions,
    threads: int,
    log: Callable[[str], None],
) -> Iterator[Chunk]:
    """Score ``tasks`` on ``options.workers`` Ray actors, write each chunk's parts here; yield each as it is done."""
    ray = _import_ray()
    joined, where = _start(ray, options)
    actors = min(options.workers, len(tasks))  # an actor without a chunk would only load the model
    nodes: Counter[str] = Counter()
    try:
        _check_cpus(ray, actors, where)
        log(f"{work.output}: scoring on Ray ({where}) with {actors} actor(s).")
        # the actors may run elsewhere, in another working folder: absolute paths (the same on every node)
        tasks = [dataclasses.replace(task, path=str(Path(task.path).resolve())) for task in tasks]
        folder = dataclasses.replace(folder, path=folder.path.resolve())
        with _quiet(ray), _one_line(ray):
            for row in _dataset(ray, tasks, folder, options, threads, actors).iter_rows():
                if row["failure"]:
                    raise pickle.loads(row["failure"])
                chunk = tasks[int(row["task"])].chunk
                write_parts(work, chunk, Parts(row["out"], row["errors"], json.loads(row["summary"])))
                nodes[row["node"]] += 1
                yield chunk
        shown = ", ".join(f"{node[:8]} ({count})" for node, count in sorted(nodes.items()))
        log(f"{work.output}: Ray actors scored {sum(nodes.values())} chunk(s) on {len(nodes)} node(s): {shown}.")
    finally:
        if joined:
            ray.shutdown()


class _ChunkActor:
    """One actor of the pool: scores the chunks Ray Data sends it (one per call) and returns their parts.

    A :class:`TextclfError` (a model that does not load, an input that changed) comes back as a
    row, pickled, for the job to raise as itself: Ray would hand it over as a traceback's text.
    """

    def __init__(self, folder: ModelFolder, options: BatchOptions, threads: int, tasks: list[Task]):
        import ray

        if folder.archive is not None and not folder.path.is_dir():  # another node: unpack the archive here
            folder = ModelFolder.read(folder.archive)
        self.scorer, self.tasks = Scorer(folder, options, threads), tasks
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self._score(int(i)) for i in batch["task"]]
        return {key: np.array([row[key] for row in rows], dtype=object) for key in rows[0]}

    def _score(self, task: int) -> dict:
        try:
            parts, failure = self.scorer.score(self.tasks[task]), b""
        except TextclfError as exc:
            parts, failure = Parts("", "", {}), pickle.dumps(exc)
        summary = json.dumps(parts.summary)
        return {
            "task": task,
            "out": parts.out,
            "errors": parts.errors,
            "summary": summary,
            "failure": failure,
            "node": self.node,
        }


def _dataset(ray, tasks: list[Task], folder: ModelFolder, options: BatchOptions, threads: int, actors: int):
    """One row (the task's index) and one block per chunk, mapped by a fixed pool of ``actors`` actors."""
    rows = ray.data.from_items([{"task": i} for i in range(len(tasks))], override_num_blocks=len(tasks))
    with warnings.catch_warnings():
        # max_restarts goes through Ray's ray_remote_args, deprecated for removal in Ray 2.64 (hence the pin
        # below it): Ray Data would restart a dead actor forever, and Ray core warns, once an actor, that such a
        # restart may fail anyway (ray-project/ray#53727). A lost actor stops the job instead; a rerun resumes.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return rows.map_batches(
            _ChunkActor,
            fn_constructor_args=(folder, options, threads, tasks),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
            max_restarts=0,
        )


# -- starting and joining Ray -------------------------------------------------------


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray, which is not installed ({exc}); {INSTALL}.") from None
    return ray


def _start(ray, options: BatchOptions) -> tuple[bool, str]:
    """Start or join Ray: (whether this job did, and so shuts it down after; where it runs, in words).

    A Ray already initialised in this process (a caller's ``ray.init``) is used as it is. Else
    ``--ray-address``, or ``$RAY_ADDRESS``, is joined; without either the job starts a Ray
    instance of its own on this machine, with as many CPUs as ``--workers`` needs at least.
    """
    if ray.is_initialized():
        if options.ray_address:
            raise ConfigError(
                f"--ray-address {options.ray_address}: Ray is already initialised in this process; leave out "
                "--ray-address to run on it, or call ray.shutdown() first."
            )
        return False, "the Ray instance of this process"
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    address = options.ray_address or os.environ.get("RAY_ADDRESS")
    if not address:
        # a small object store: the job's objects are chunks' lines (a few MB at most), and Ray's default (30% of
        # the memory) takes ~1 s longer to set up
        store = (256 + 16 * options.workers) * 2**20
        ray.init(
            address="local",
            num_cpus=max(cores(), options.workers),
            object_store_memory=store,
            include_dashboard=False,
            **quiet,
        )
        return True, "a local instance"
    name = f"--ray-address {address}" if options.ray_address else f"RAY_ADDRESS {address}"
    if address != "auto":
        _probe(address, name)
    _init_within(ray, address, name, quiet)
    return True, address


def _probe(address: str, name: str) -> None:
    """Refuse at once an address where nothing listens (ray.init would retry it forever)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"{name}: expected host:port (the address `ray start --head` printed), ray://host:port or auto."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"{name}: nothing answers there ({exc.strerror or exc}); start the cluster with `ray start --head` "
            "or pass the address it printed."
        ) from None


def _init_within(ray, address: str, name: str, quiet: dict) -> None:
    """``ray.init(address)``, given up after ``CONNECT_TIMEOUT_S``: a port that answers but is no Ray hangs it."""
    outcome: list[BaseException | None] = []

    def join() -> None:
        try:
            ray.init(address=address, **quiet)
            outcome.append(None)
        except BaseException as exc:  # handed to the main thread
            outcome.append(exc)

    thread = threading.Thread(target=join, name="ray-init", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if not outcome:
        raise ConfigError(
            f"{name}: no Ray cluster answered within {CONNECT_TIMEOUT_S:.0f} s; check that it is the address "
            "`ray start --head` printed (its GCS port, 6379 by default)."
        )
    if outcome[0] is not None:
        raise ConfigError(f"{name}: could not join the Ray cluster ({_first_line(outcome[0])}).") from outcome[0]


def _check_cpus(ray, actors: int, where: str) -> None:
    """An actor takes one CPU: a pool larger than the cluster would wait forever for the missing ones."""
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < actors:
        raise ConfigError(
            f"the Ray cluster ({where}) has {cpus:g} CPU(s) and --workers {actors} needs one an actor; "
            f"pass --workers {max(1, int(cpus))} or fewer, or add nodes."
        )


@contextmanager
def _quiet(ray):
    """No Ray Data progress bars or log lines while the job runs (its errors are raised here instead)."""
    context = ray.data.DataContext.get_current()
    names = ("enable_progress_bars", "enable_operator_progress_bars", "print_on_execution_start")
    saved = {name: getattr(context, name) for name in names if hasattr(context, name)}
    logger = logging.getLogger("ray.data")
    level = logger.level
    try:
        for name in saved:
            setattr(context, name, False)
        logger.setLevel(logging.CRITICAL)
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        logger.setLevel(level)


@contextmanager
def _one_line(ray) -> Iterator[None]:
    """A Ray failure (an actor or node lost, an error in an actor that is not a TextclfError) as one line."""
    try:
        yield
    except ray.exceptions.RayError as exc:
        raise TextclfError(
            f"Ray: {_first_line(exc)}; the chunks scored so far are kept: run the same command again to resume."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")
