"""Dynamic batching: texts from concurrent requests share one forward pass.

Requests put their texts on one queue and await one future per text. A single task takes
batches off the queue and runs them on one model thread, so the event loop keeps accepting
and answering requests while the model computes. A batch is closed when it is full
(``max_batch_size``), when its oldest text has waited ``max_delay`` seconds, or as soon as
no other request is on its way in (``arriving == 0``): waiting longer could only add latency.
While the model thread is busy, the next batch fills up by itself.

When more texts wait than fit into one batch, the batch is the run of ``max_batch_size``
texts of most similar length (by characters) that includes the oldest one, so padding stays
small and no text waits behind younger ones for ever. A request with many texts is spread
over as many batches as needed; its results come back in its own order.

A failure in the model fails the texts of that batch (with
:class:`~textclf.serving.errors.ModelFailure`), never the batcher: the next batch runs as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..validation import at_least
from .errors import ModelFailure

__all__ = ["DynamicBatcher"]

log = logging.getLogger("textclf.serving")
_WINDOW = 4  # look this many batches deep into the queue when grouping by length


@dataclass(eq=False)
class _Item:
    text: str
    arrived: float
    future: asyncio.Future


class DynamicBatcher:
    """Coalesce texts into batches for ``run(texts) -> probabilities`` (one row per text).

    ``observe(batch_size, queue_depth)`` is called for every batch (for metrics).
    """

    def __init__(
        self,
        run: Callable[[list[str]], np.ndarray],
        max_batch_size: int = 64,
        max_delay: float = 0.005,
        observe: Callable[[int, int], None] | None = None,
    ):
        at_least("max_batch_size", max_batch_size, 1)
        at_least("max_delay", max_delay, 0)
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.observe = observe or (lambda size, depth: None)
        self.arriving = 0  # requests accepted but not yet submitted (the app keeps count)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="textclf-model")
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="textclf-batcher")

    async def close(self) -> None:
        """Finish every queued text, then stop."""
        self._closing = True
        if self._task is not None:
            self._wakeup.set()
            await self._task
        self.executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for ``texts``, in their order, once their batches have run."""
        if self._task is None or self._closing:
            raise ModelFailure("the model is not accepting requests (starting or shutting down).")
        loop = asyncio.get_running_loop()
        now = loop.time()
        items = [_Item(text, now, loop.create_future()) for text in texts]
        was_empty = not self._queue
        self._queue.extend(items)
        if was_empty or len(self._queue) >= self.max_batch_size or self.arriving == 0:
            self._wakeup.set()
        try:
            rows = await asyncio.gather(*(item.future for item in items))
        except BaseException:
            for item in items:
                if not item.future.done():
                    item.future.cancel()  # a disconnected client's texts are skipped, not run
                elif not item.future.cancelled():
                    item.future.exception()  # retrieved: the request answers with the first failure
            raise
        return np.stack(rows)

    # -- the batching task ---------------------------------------------------------------

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._fill(loop)
            batch = self._take()
            if batch:
                await self._run_batch(loop, batch)

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the batch is full, its oldest text is due, or nobody else is arriving."""
        deadline = self._queue[0].arrived + self.max_delay
        while len(self._queue) < self.max_batch_size and self.arriving > 0 and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        queue = [item for item in self._queue if not item.future.done()]
        if len(queue) <= self.max_batch_size:
            self._queue.clear()
            return queue
        size = self.max_batch_size
        window = queue[: size * _WINDOW]
        order = sorted(range(len(window)), key=lambda i: len(window[i].text))
        oldest = order.index(0)
        starts = range(max(0, oldest - size + 1), min(oldest, len(window) - size) + 1)
        best = min(starts, key=lambda s: len(window[order[s + size - 1]].text) - len(window[order[s]].text))
        chosen = {order[i] for i in range(best, best + size)}
        batch = [window[i] for i in sorted(chosen)]
        taken = set(map(id, batch))
        self._queue = deque(item for item in queue if id(item) not in taken)
        return batch

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        self.observe(len(batch), len(self._queue))
        try:
            probabilities = await loop.run_in_executor(self.executor, self.run, [item.text for item in batch])
        except Exception as exc:
            log.error("model failed on a batch of %d texts: %s: %s", len(batch), type(exc).__name__, exc)
            failure = ModelFailure(f"the model failed: {type(exc).__name__}: {exc}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(failure)
            return
        for item, row in zip(batch, probabilities):
            if not item.future.done():
                item.future.set_result(row)
