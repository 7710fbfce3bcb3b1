"""Score large files offline, without an endpoint: ``textclf batch``.

    >>> from textclf.batch import BatchOptions, run_batch
    >>> result = run_batch("runs/reviews", "texts/", "scored", BatchOptions(workers=2))  # doctest: +SKIP
    >>> result.records, result.errors, result.exit_code  # doctest: +SKIP
    (120000, 3, 3)

Each input file gives ``OUTPUT/<name>.out`` (JSON lines or CSV, in input order) and, when
some records could not be read, ``OUTPUT/<name>.errors``. The work is cut into chunks of a
fixed number of records, each written whole or not at all, under a manifest that records
what the job is; kill a run at any moment and run the same command again, and the outputs
are byte for byte those of an uninterrupted run. The modules, in the order a job uses them:

    _options   BatchOptions: what to read (as textclf.data.reader ReadOptions), how to score, what to write
    _inputs    --input as a file, a folder or a glob -> the input files
    _plan      cut files into chunks, and the job into shards
    _manifest  the working folder: identity of the job, atomic writes, lock
    _output    the lines of .out (jsonl or csv) and .errors
    _job       run it all: score chunks (in workers), assemble files, sum the evaluation
    _ray       --engine ray: the chunks scored by a pool of Ray actors, written here (the only import of Ray)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._options import DEFAULT_CHUNK_SIZE, FORMATS, OUTPUT_FORMATS, BatchOptions, parse_shard

if TYPE_CHECKING:
    from ._job import EXIT_RECORD_ERRORS, BatchResult, run_batch

_LAZY = dict.fromkeys(("EXIT_RECORD_ERRORS", "BatchResult", "run_batch"), "_job")  # the CLI needs only BatchOptions


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "BatchOptions",
    "BatchResult",
    "DEFAULT_CHUNK_SIZE",
    "EXIT_RECORD_ERRORS",
    "FORMATS",
    "OUTPUT_FORMATS",
    "parse_shard",
    "run_batch",
]
