"""Dynamic batching: coalescing, order, length grouping, failures and shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from textclf.errors import ConfigError
from textclf.serving.batcher import DynamicBatcher
from textclf.serving.errors import ModelFailure


class FakeModel:
    """'Probabilities' that encode the text, so every answer can be checked; records batches."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("boom")
        time.sleep(self.delay)
        return np.array([[float(len(t)), float(hash(t) % 1000)] for t in texts])


def expected(text: str) -> list[float]:
    return [float(len(text)), float(hash(text) % 1000)]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_answers_in_order():
    model = FakeModel(delay=0.02)

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=8, max_delay=0.01)
        batcher.start()
        requests = [[f"request {r} text {i}" + "x" * (r * i % 7) for i in range(1 + r % 5)] for r in range(40)]
        results = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
        await batcher.close()
        return requests, results

    requests, results = run(main())
    for texts, rows in zip(requests, results):
        assert rows.tolist() == [expected(t) for t in texts]
    sizes = [len(b) for b in model.batches]
    assert max(sizes) == 8 and sum(sizes) == sum(len(t) for t in requests)
    assert len(model.batches) < 40  # coalesced: fewer forward passes than requests
    assert all(name.startswith("textclf-model") for name in model.threads)  # off the event loop


def test_a_request_larger_than_a_batch_is_split_and_reassembled():
    model = FakeModel()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=4, max_delay=0)
        batcher.start()
        texts = [f"t{i}" * (i % 5 + 1) for i in range(11)]
        rows = await batcher.submit(texts)
        await batcher.close()
        return texts, rows

    texts, rows = run(main())
    assert rows.tolist() == [expected(t) for t in texts]
    assert [len(b) for b in model.batches] == [4, 4, 3]


def test_a_full_queue_is_batched_by_length_and_the_oldest_text_goes_first():
    model = FakeModel()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=3, max_delay=1.0)
        batcher.start()
        batcher.arriving = 1  # keep the first batch open until it is full
        texts = ["medium text", "a" * 40, "b", "c" * 41, "d", "mediumtext!"]
        rows = await batcher.submit(texts)
        await batcher.close()
        return texts, rows

    texts, rows = run(main())
    assert rows.tolist() == [expected(t) for t in texts]
    first = model.batches[0]
    assert "medium text" in first  # the oldest text is always in the next batch
    spans = [max(map(len, b)) - min(map(len, b)) for b in model.batches]
    assert max(spans) < 40  # the two long texts were not mixed with the one-letter ones


def test_a_lone_request_does_not_wait_for_the_batch_delay():
    model = FakeModel()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=64, max_delay=5.0)
        batcher.start()
        start = time.perf_counter()
        await batcher.submit(["alone"])
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    assert run(main()) < 1.0  # nobody else is arriving, so the 5 s delay is not spent


def test_the_delay_holds_a_batch_open_while_requests_are_arriving():
    model = FakeModel()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=64, max_delay=0.3)
        batcher.start()
        batcher.arriving = 1
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.05)
        batcher.arriving = 0
        await batcher.submit(["second"])
        await first
        await batcher.close()

    run(main())
    assert model.batches == [["first", "second"]]


def test_a_model_failure_fails_only_its_batch_and_the_batcher_keeps_serving():
    model = FakeModel(fail_on="bad")

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=2, max_delay=0)
        batcher.start()
        with pytest.raises(ModelFailure, match="RuntimeError: boom"):
            await batcher.submit(["bad", "also in the bad batch"])
        rows = await batcher.submit(["fine"])
        await batcher.close()
        return rows

    assert run(main()).tolist() == [expected("fine")]


def test_close_finishes_queued_texts_then_refuses_new_ones():
    model = FakeModel(delay=0.05)

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=1, max_delay=0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(3)]
        await asyncio.sleep(0)
        await batcher.close()
        done = [rows.tolist() for rows in await asyncio.gather(*pending)]
        with pytest.raises(ModelFailure, match="not accepting"):
            await batcher.submit(["late"])
        return done

    assert run(main()) == [[expected(f"t{i}")] for i in range(3)]


def test_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="max_batch_size must be at least 1, but got max_batch_size=0"):
        DynamicBatcher(FakeModel(), max_batch_size=0)
    with pytest.raises(ConfigError, match="max_delay must be at least 0, but got max_delay=-1"):
        DynamicBatcher(FakeModel(), max_delay=-1)
