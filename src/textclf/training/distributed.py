"""Training in several processes with torch.distributed, or in one.

``torchrun --nproc-per-node N -m textclf train ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in their environment (``--nnodes``
and ``--rdzv-endpoint`` spread them over machines); ``textclf train --nproc N`` runs the same
launcher in-process (:func:`launch`, which also starts one machine's share of a job on several).
Only global rank 0 writes (the output folder, its checkpoints); every process reads the data,
the model and, on a resume, the checkpoint rank 0 found, at the same paths. :meth:`World.start`
joins the copies into one process group: gloo on CPU, nccl on GPU. Everything in the training
loop that crosses processes goes through :class:`World`:

* :meth:`World.wrap` puts the model in DistributedDataParallel, which averages gradients
  during the backward pass (:meth:`World.no_sync` skips that between accumulated micro-batches);
* :meth:`World.agree` sums a few numbers over the processes in one all-reduce, which is how
  processes holding different numbers of batches (sifting keeps different shares of each
  shard) stay in lockstep instead of deadlocking DDP;
* :meth:`World.gather`, :meth:`World.gather_to_main` and :meth:`World.broadcast` move Python
  objects (validation logits, checkpoint state, a checkpoint's path).

With one process every call is local. :func:`resolve_precision` chooses the run's compute
precision for its device (:class:`Precision`: the name, why, and the kernels the matrix products
take); :meth:`World.autocast` applies it to the forward passes.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from ..backends import threads_per_worker
from ..errors import ConfigError, TextclfError
from ..models import cpu_flags, native_bf16_flag

__all__ = ["DEFAULT_MASTER_PORT", "Precision", "World", "launch", "launched", "resolve_device", "resolve_precision"]

SHUTDOWN_SECONDS = 300
"""How long ``textclf train --nproc`` waits for workers to checkpoint and stop after a signal."""

DEFAULT_MASTER_PORT = 29500
"""The port node 0 of a launch on several machines listens on for the others, unless told another (torchrun's)."""

JOIN_SECONDS = 600
"""How long a node of a launch on several machines waits for all of them to join (torchrun's default)."""


def launched() -> bool:
    """True in a process started by torchrun (or ``textclf train --nproc``)."""
    return "LOCAL_WORLD_SIZE" in os.environ and "RANK" in os.environ


def resolve_device(option: str, local_rank: int = 0) -> torch.device:
    """``cpu``, ``cuda`` (this process's GPU: its local rank's), or ``auto`` (cuda when PyTorch sees a GPU)."""
    if option == "cpu" or (option == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device is 'cuda', but this PyTorch ({torch.__version__}) sees no CUDA GPU; pass --device cpu (or auto)."
        )
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if per_machine > torch.cuda.device_count():
        raise ConfigError(
            f"{per_machine} training processes on this machine, but it has {torch.cuda.device_count()} GPU(s): "
            "start at most one process per GPU, or pass --device cpu."
        )
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Precision:
    """A run's compute precision (``float32`` or ``bfloat16``), why it was chosen, and the kernels its
    matrix products take (the CPU's ``AVX2``, ``AVX512``, ``AMX`` ... or ``CUDA``).

        >>> print(Precision("bfloat16", "auto: CPU has amx_bf16", "AMX"))
        precision bfloat16 (auto: CPU has amx_bf16; kernels: AMX)
    """

    name: str
    reason: str
    kernels: str
    emulated: bool = False  # bfloat16 on a CPU without it in hardware: correct, but slower than float32

    def __str__(self) -> str:
        return f"precision {self.name} ({self.reason}; kernels: {self.kernels})"

    @property
    def warning(self) -> str | None:
        """One line for the log when the choice is a slow one, else None."""
        if not self.emulated:
            return None
        return (
            "warning: this CPU has no native bfloat16 (AMX or AVX512-BF16), so bfloat16 is emulated and slower "
            "than float32; pass --precision auto or float32."
        )


def resolve_precision(option: str, device: torch.device, flags: Collection[str] | None = None) -> Precision:
    """``float32``, ``bfloat16`` or ``auto`` (bfloat16 where ``device`` multiplies it natively) on ``device``.

    On the CPU, native means the ``amx_bf16`` or ``avx512_bf16`` flag among ``flags`` (this CPU's,
    :func:`~textclf.models.cpu_flags`, by default); bfloat16 forced without one still runs, emulated.
    On a GPU, native means ``torch.cuda.is_bf16_supported()``; bfloat16 forced without it is a
    :class:`~textclf.errors.ConfigError`.

        >>> resolve_precision("auto", torch.device("cpu"), flags={"avx2", "avx512_bf16"}).name
        'bfloat16'
        >>> resolve_precision("auto", torch.device("cpu"), flags={"avx2"}).reason
        'auto: this CPU has no native bfloat16'
    """
    if device.type == "cuda":
        return _gpu_precision(option, device)
    native = native_bf16_flag(cpu_flags() if flags is None else flags)
    name = option if option != "auto" else ("bfloat16" if native else "float32")
    if option == "auto":
        reason = f"auto: CPU has {native}" if native else "auto: this CPU has no native bfloat16"
    else:
        reason = "set by --precision"
    vector = torch.backends.cpu.get_cpu_capability()  # the ATen kernels' instruction set: AVX2, AVX512, ...
    if name == "float32":
        return Precision(name, reason, vector)
    if native is None:
        return Precision(name, reason, f"{vector}, bfloat16 emulated", emulated=True)
    return Precision(name, reason, {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}[native])


def _gpu_precision(option: str, device: torch.device) -> Precision:
    """:func:`resolve_precision` on a CUDA GPU."""
    gpu = torch.cuda.get_device_name(device)
    supported = torch.cuda.is_bf16_supported()
    if option == "bfloat16" and not supported:
        raise ConfigError(
            f"precision is 'bfloat16', but this GPU ({gpu}) does not support it; pass --precision float32 (or auto)."
        )
    if option == "auto":
        verdict = "supports" if supported else "does not support"
        return Precision("bfloat16" if supported else "float32", f"auto: {gpu} {verdict} bfloat16", "CUDA")
    return Precision(option, "set by --precision", "CUDA")


class World:
    """This process's place among the training processes: rank, size, device and precision.

    ``precision`` is a :func:`resolve_precision` result; float32 when not given.
    """

    def __init__(
        self,
        rank: int = 0,
        size: int = 1,
        device: torch.device = torch.device("cpu"),
        owns_group: bool = False,
        precision: Precision | None = None,
    ):
        self.rank, self.size, self.device, self._owns_group = rank, size, device, owns_group
        self.precision = precision or resolve_precision("float32", device)
        self.bf16 = self.precision.name == "bfloat16"

    @classmethod
    def start(cls, device: str = "auto", precision: str = "auto") -> World:
        """One process, or this one's place in the group torchrun started (joined here if not yet)."""
        if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
            where = resolve_device(device)
            return cls(device=where, precision=resolve_precision(precision, where))
        import torch.distributed as dist

        where = resolve_device(device, int(os.environ["LOCAL_RANK"]))
        chosen = resolve_precision(precision, where)  # before joining: a ConfigError stops each process alike
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(
                "nccl" if where.type == "cuda" else "gloo", device_id=where if where.type == "cuda" else None
            )
        return cls(dist.get_rank(), dist.get_world_size(), where, owns, chosen)

    @classmethod
    @contextmanager
    def session(cls, device: str = "auto", precision: str = "auto") -> Iterator[World]:
        """:meth:`start`, and :meth:`close` at the end: ``finished`` unless an exception ends it."""
        world = cls.start(device, precision)
        try:
            yield world
        except BaseException:
            world.close(finished=False)
            raise
        world.close()

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes."""
        return self.rank == 0

    def autocast(self) -> AbstractContextManager:
        """bfloat16 autocast on this process's device (CPU or GPU) when the run computes in bfloat16;
        nothing otherwise (not even a disabled autocast, which would switch off an enclosing one)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel with several processes (rank 0's weights copied to all), else itself.

        Buffers are not broadcast on each forward (transformers' buffers are constants), so a
        process may run a forward pass the others do not (sifting scores, uneven shards).
        """
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        with warnings.catch_warnings():
            # torch 2.13 deprecates broadcast_buffers for forward_sync_buffers, which older torch (pyproject allows
            # >= 2.4) does not have; the meaning wanted here is the same in both
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.* is deprecated", category=FutureWarning)
            return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def no_sync(self, model: torch.nn.Module, skip: bool) -> AbstractContextManager:
        """With ``skip``, a backward pass that only accumulates gradients locally (DDP's ``no_sync``)."""
        return model.no_sync() if skip and self.size > 1 else nullcontext()

    def agree(self, *values: float) -> list[float]:
        """Each value summed over the processes (one all-reduce)."""
        if self.size == 1:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True in every process when ``flag`` is true in any."""
        return self.agree(float(flag))[0] > 0

    def on_main(self, check: Callable[[], Any]) -> Any:
        """``check()``'s result in rank 0 (None elsewhere); its :class:`~textclf.errors.TextclfError`
        raised in every process, since the others would otherwise wait for rank 0 in a collective."""
        result, error = None, None
        if self.is_main:
            try:
                result = check()
            except TextclfError as exc:
                error = exc
        error = self.broadcast(error)
        if error is not None:
            raise error
        return result

    def gather(self, obj: Any) -> list:
        """Every process's ``obj``, by rank, in every process."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def gather_to_main(self, obj: Any) -> list | None:
        """Every process's ``obj``, by rank, in rank 0; None elsewhere."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list | None = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, in every process."""
        if self.size == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self, finished: bool = True) -> None:
        """Leave the process group, if :meth:`start` joined it: once all processes got here when
        ``finished``, at once after an error (another process may never get here)."""
        if self._owns_group:
            import torch.distributed as dist

            if finished:
                dist.barrier()
            dist.destroy_process_group()
            self._owns_group = False


def launch(
    nproc: int,
    argv: list[str],
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    join_timeout: int = JOIN_SECONDS,
) -> int:
    """Run ``python -m textclf ARGV`` in ``nproc`` processes on this machine; the exit code for them all.

    This is torchrun's launcher, run in this process, which stays as the agent that watches the
    workers and passes signals on. On one machine (``nnodes=1``) it is ``--standalone``: a free
    local port for the rendezvous. With ``nnodes`` > 1 it starts this machine's share of a job
    spread over several, as ``torchrun --nnodes N --node-rank R --master-addr A --master-port P``
    does (static rendezvous): the same call runs on every machine, each with its own ``node_rank``
    (0 to ``nnodes`` - 1), and node 0 listens on ``master_addr``:``master_port``
    (:data:`DEFAULT_MASTER_PORT` unless given), which every node must reach; global rank 0, the
    process that logs and writes, is node 0's first. A node whose peers have not all joined
    within ``join_timeout`` seconds raises a :class:`~textclf.errors.ConfigError`. On each of two
    machines, node 0 being 10.0.0.1, with R its node rank::

        launch(8, ["train", "--data", "/shared/train.csv", "--output", "/shared/model"],
               nnodes=2, node_rank=R, master_addr="10.0.0.1")

    Each worker gets ``OMP_NUM_THREADS`` = this machine's cores / ``nproc`` unless it is set. After a
    signal, workers get :data:`SHUTDOWN_SECONDS` to write their checkpoint (torchrun's default is 30).
    The workers report their own errors, so the launcher's log of them is silenced.
    """
    if nnodes > 1:
        if master_addr is None:
            raise ConfigError(f"a launch on {nnodes} machines needs master_addr, the address of node 0.")
        if not 0 <= node_rank < nnodes:
            raise ConfigError(f"node_rank {node_rank} is not one of the {nnodes} machines' ranks, 0 to {nnodes - 1}.")
        master_port = master_port or DEFAULT_MASTER_PORT
        rendezvous = [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
            f"--rdzv-conf=timeout={join_timeout}",
        ]
    else:
        rendezvous = ["--standalone"]
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_worker(nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = get_args_parser().parse_args(
        [*rendezvous, f"--nproc-per-node={nproc}", f"--shutdown-timeout={SHUTDOWN_SECONDS}", "--module", "textclf"]
    )
    args.training_script_args = list(argv)  # set, not parsed: torchrun's parser would read `--nproc` as its own
    try:
        run(args)
    except ChildFailedError as exc:
        # The launcher stops the other workers with SIGTERM once one fails: the code of a worker that exited
        # on its own is the cause (rank 0's first: it is the one that reports), a signal's only when none did.
        codes = [failure.exitcode for _, failure in sorted(exc.failures.items())]
        code = next((c for c in codes if c > 0), codes[0])
        return code if code > 0 else 128 - code  # killed by signal N: 128 + N, as a shell reports it
    except SignalException:
        return 130
    except DistError as exc:  # a launch on several nodes: node 0's rendezvous store not reached in time
        if nnodes == 1:
            raise
        raise ConfigError(
            f"node {node_rank} of {nnodes}: not all {nnodes} nodes joined at {master_addr}:{master_port} within "
            f"{join_timeout} s ({str(exc).splitlines()[0]}); start the same launch on every node, each with its "
            "own node rank and node 0's address, and check that node 0's port is open."
        ) from exc
    return 0
