"""Cut each input file into chunks of ``chunk_size`` records, and a job into shards.

A chunk is a byte range that starts and ends on record boundaries, found in one streaming
pass over the file: ``(start, end, line, records)``. The same file and chunk size always
give the same chunks, so a resumed run, another worker or another machine scores exactly the
records a single uninterrupted run would. Every file has at least one chunk (an empty file:
one with no records), so every file has an owner and gets its ``.out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.reader import Layout, read_records


@dataclass(frozen=True)
class Chunk:
    """Records ``[start, end)`` (bytes) of input file number ``file``, the ``index``-th chunk of that file."""

    file: int
    index: int
    start: int
    end: int
    line: int
    records: int


def plan_file(path: Path, layout: Layout, encoding: str, chunk_size: int) -> list[list[int]]:
    """``[start, end, line, records]`` per chunk of ``path``."""
    chunks: list[list[int]] = []
    start, line, end, count = layout.start, layout.line, layout.start, 0
    for _, end, next_line in read_records(path, layout, encoding, layout.start, None, layout.line):
        count += 1
        if count == chunk_size:
            chunks.append([start, end, line, count])
            start, line, count = end, next_line, 0
    if count or not chunks:
        chunks.append([start, end, line, count])
    return chunks


def job_chunks(plans: list[list[list[int]]]) -> list[Chunk]:
    """Every chunk of the job, file after file."""
    return [Chunk(f, i, *chunk) for f, chunks in enumerate(plans) for i, chunk in enumerate(chunks)]


def shard(chunks: list[Chunk], index: int, count: int) -> list[Chunk]:
    """The ``index``-th of ``count`` contiguous, near-equal shares: shards in order concatenate to the job."""
    total = len(chunks)
    return chunks[total * index // count : total * (index + 1) // count]
