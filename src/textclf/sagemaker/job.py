"""``textclf sagemaker train``: one SageMaker training job, from its folders to its model.

The job reads :mod:`~textclf.sagemaker.layout`'s folders and :mod:`~textclf.sagemaker.settings`'
hyperparameters, trains with ``textclf train``'s recipe into a work folder outside ``/opt/ml``
with checkpoints in the checkpoints folder (synced with S3, so running the job again resumes),
and only once the model folder is complete moves its files into ``model/``: a failed job leaves
``model/`` as it found it. Metrics and the report are copied into ``output/data/``.

A failure writes its one-line reason to ``output/failure`` and exits non-zero: 2 for a problem
with the job's input, 1 for anything unexpected, 143 after SIGTERM (StopTrainingJob, a spot
interruption), which writes a checkpoint at the next optimizer step first. 130 is not used: local
mode counts it as success.

Several hosts in resourceconfig.json make one DDP job: the node rank is ``current_host``'s index in
the sorted hosts, and ``hosts[0]`` is the rendezvous, on torchrun's port 29500
(:data:`textclf.training.distributed.DEFAULT_MASTER_PORT`; override it with ``TEXTCLF_MASTER_PORT``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .. import artifact
from ..errors import ConfigError, ModelError, TextclfError, TrainingInterrupted
from ..progress import log_stderr
from .layout import Cluster, Layout
from .settings import JobSettings

__all__ = ["SIGTERM_EXIT", "metric_lines", "publish", "train_job"]

SIGTERM_EXIT = 143  # 128 + SIGTERM, as a shell reports it
RESOLVE_SECONDS = 300.0  # how long to wait for hosts[0]'s name to resolve: SageMaker's may resolve late
OUTPUT_DATA_FILES = (artifact.METRICS_FILE, artifact.REPORT_FILE, artifact.CURVES_FILE, artifact.METADATA_FILE)


def train_job(layout: Layout, argv: list[str], log: Callable[[str], None] = log_stderr) -> int:
    """Run the job; its exit code (see the module docstring). ``argv``: this command's arguments, which each
    training process runs again when the job has several processes."""
    from ..training.distributed import launched

    if not launched():  # the job's own process (not one of the training processes it starts)
        layout.clear_results()  # a previous run's in this folder (local mode, a rerun to resume)
    try:
        settings = JobSettings.from_mapping(layout.hyperparameters(), str(layout.config_dir / "hyperparameters.json"))
        cluster = layout.cluster()
        data = layout.data("training", required=True)
        validation = layout.data("validation")
        nproc = settings.nproc or _gpus() or 1
        if (cluster.size > 1 or nproc > 1) and not launched():
            return _launch(layout, cluster, nproc, argv, log)
        model = _model(layout, settings)
        return _train(layout, settings, data, validation, model, log)
    except TrainingInterrupted as exc:
        _fail(layout, str(exc), log)
        return SIGTERM_EXIT
    except KeyboardInterrupt:  # a signal before training could checkpoint (loading), or a third one
        _fail(layout, "stopped by a signal before a checkpoint could be written; run the job again.", log)
        return SIGTERM_EXIT
    except TextclfError as exc:
        _fail(layout, str(exc), log)
        return 2
    except Exception as exc:  # the reason still reaches the job's FailureReason
        _fail(layout, f"unexpected {type(exc).__name__}: {exc}", log)
        return 1


def _train(
    layout: Layout,
    settings: JobSettings,
    data: Path,
    validation: Path | None,
    model: str | None,
    log: Callable[[str], None],
) -> int:
    from ..training import train

    main = _rank0()
    work = _work_folder(layout)
    if main:
        shutil.rmtree(work.parent, ignore_errors=True)  # a previous run's, in this container
    result = train(
        data,
        work,
        model=model,
        validation=validation,
        hyperparameters=settings.hyperparameters,
        read_options=settings.read_options,
        options=settings.run_options.updated({"checkpoint_dir": str(layout.checkpoints)}),
        overwrite=True,
        log=log,
        progress=False,
        on_epoch=(lambda record: print(*metric_lines(record), sep="\n", flush=True)) if main else None,
    )
    if main:
        publish(result.output, layout.model_dir)
        layout.output_data.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_DATA_FILES:
            if (result.output / name).is_file():
                shutil.copy2(result.output / name, layout.output_data / name)
        shutil.rmtree(work.parent, ignore_errors=True)
        layout.success_file.touch()
        log(f"model folder written to {layout.model_dir}; metrics and report in {layout.output_data}")
    return 0


def metric_lines(record: dict) -> list[str]:
    """An epoch's figures the way HF Trainer logs them, which SageMaker's metric regexes (JumpStart's, and
    ``'eval_accuracy': ([0-9.]+)`` for hyperparameter tuning on ``val_accuracy``) read from the log; numbers in
    fixed point, since those regexes would read 4e-05 as 4."""
    train_figures = {"loss": record["train_loss"]}
    evaluated = {
        f"eval_{name[4:]}": value
        for name, value in record.items()
        if name.startswith("val_") and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if "eval_f1" not in evaluated and "eval_micro_f1" in evaluated:
        evaluated["eval_f1"] = evaluated["eval_micro_f1"]  # multi-label: JumpStart's f1 is the micro one
    groups = [train_figures, evaluated] if evaluated else [train_figures]
    return [_trainer_dict({**figures, "epoch": record["epoch"]}) for figures in groups]


def _trainer_dict(figures: dict) -> str:
    return "{" + ", ".join(f"'{name}': {_fixed(value)}" for name, value in figures.items()) + "}"


def _fixed(value: float) -> str:
    text = f"{float(value):.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def publish(folder: Path, model_dir: Path) -> None:
    """Put the model folder's files at the root of ``model_dir`` (which may be a mount point, so it cannot be
    renamed into place): copied beside them first, then each moved in, ``textclf.json`` last, so a folder without
    it is never taken for a finished model; what ``model_dir`` held before is replaced."""
    model_dir.mkdir(parents=True, exist_ok=True)
    incoming = model_dir / f".textclf-incoming-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(folder, incoming)
        for old in model_dir.iterdir():
            if old != incoming:
                _remove(old)
        names = sorted(p.name for p in incoming.iterdir())
        for name in sorted(names, key=lambda n: n == artifact.METADATA_FILE):
            os.replace(incoming / name, model_dir / name)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _launch(layout: Layout, cluster: Cluster, nproc: int, argv: list[str], log: Callable[[str], None]) -> int:
    """Start this host's ``nproc`` training processes of the job (each runs ``argv`` again); their exit code."""
    from ..training.distributed import DEFAULT_MASTER_PORT, launch

    given = os.environ.get("TEXTCLF_MASTER_PORT", str(DEFAULT_MASTER_PORT))
    if not given.isdigit() or not 0 < int(given) < 65536:
        raise ConfigError(f"TEXTCLF_MASTER_PORT must be a port number, but got {given!r}.")
    port = int(given)
    if cluster.size > 1:
        _wait_for_name(cluster.master)
        log(
            f"host {cluster.current_host}: node {cluster.rank} of {cluster.size}, {nproc} process(es) each; "
            f"rendezvous at {cluster.master}:{port}"
        )
    code = launch(
        nproc, argv, nnodes=cluster.size, node_rank=cluster.rank, master_addr=cluster.master, master_port=port
    )
    if code == 130:  # the launcher itself was signalled: the processes wrote their checkpoint and stopped
        code = SIGTERM_EXIT
    if code:
        layout.write_failure(f"the training processes on {cluster.current_host} failed (exit code {code}).")
    return code


def _model(layout: Layout, settings: JobSettings) -> str | None:
    """The model to start from: the ``model`` channel's (incremental training) or the ``model`` hyperparameter."""
    folder = layout.channel_dir("model")
    if not folder.is_dir() or not any(folder.iterdir()):
        return settings.model
    if (folder / "config.json").is_file():
        return str(folder)
    archives = sorted(folder.glob("*.tar.gz"))
    if len(archives) == 1:
        return str(archives[0])  # unpacked safely, once, by resolve_model (textclf.packaging)
    raise ModelError(
        f"channel 'model' ({folder}) holds neither a model folder (config.json) nor one model.tar.gz; give it the "
        "output of an earlier textclf or SageMaker training job."
    )


def _work_folder(layout: Layout) -> Path:
    """Where the model folder is built: outside /opt/ml, one folder a base directory."""
    key = hashlib.sha256(str(layout.base.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"textclf-sagemaker-{key}" / "model"


def _wait_for_name(host: str, seconds: float = RESOLVE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.getaddrinfo(host, None)
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ModelError(
                    f"host {host} (hosts[0], the rendezvous) did not resolve in {seconds:.0f} s: {exc}."
                ) from None
            time.sleep(2)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _rank0() -> bool:
    """This process writes: rank 0 of the training processes, or the job's only process."""
    return os.environ.get("RANK", "0") == "0"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _fail(layout: Layout, reason: str, log: Callable[[str], None]) -> None:
    log(f"error: {reason}")
    if _rank0():
        try:
            layout.write_failure(reason)
        except OSError as exc:
            print(f"error: cannot write {layout.failure_file} ({exc.strerror})", file=sys.stderr)
