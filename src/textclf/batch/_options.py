"""What a batch job is asked to do: one frozen, validated dataclass."""

from __future__ import annotations

import codecs
import re
from dataclasses import asdict, dataclass

from ..errors import ConfigError

FORMATS = ("auto", "text", "csv", "tsv", "jsonl", "text-csv")
OUTPUT_FORMATS = ("jsonl", "csv")
DEFAULT_CHUNK_SIZE = 2000

# Options that cannot change a single output byte; all others are part of the job's identity.
_NOT_IDENTITY = ("workers", "evaluate")


@dataclass(frozen=True)
class BatchOptions:
    """How to read the inputs, run the model and write the outputs.

    ``text_column``/``label_column``/``id_column``: a CSV header name, a 0-based column index
    (a file without a header), or a JSON key. ``header``: None decides per file.
    ``shard``: ``(i, n)`` processes the i-th of n contiguous shares of the job's chunks.
    """

    format: str = "auto"
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    header: bool | None = None
    encoding: str = "utf-8"
    output_format: str = "jsonl"
    join_source: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    shard: tuple[int, int] = (0, 1)
    workers: int = 1
    backend: str = "auto"
    dtype: str = "float32"
    batch_size: int = 64
    evaluate: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, but got format={self.format!r}.")
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(
                f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, but got output_format={self.output_format!r}."
            )
        for name in ("chunk_size", "workers", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, but got {name}={getattr(self, name)}.")
        index, count = self.shard
        if not 0 <= index < count:
            raise ConfigError(f"shard must be i/N with 0 <= i < N, but got shard={index}/{count}.")
        try:
            newline = "\n".encode(codecs.lookup(self.encoding).name)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}; pass a Python codec name such as utf-8 or latin-1."
            ) from None
        if newline != b"\n":
            raise ConfigError(
                f"encoding {self.encoding!r} does not end lines with a single \\n byte; convert the files to utf-8 first."
            )

    def identity(self) -> dict:
        """The options that decide the output bytes (recorded in the manifest)."""
        values = asdict(self)
        for name in _NOT_IDENTITY:
            values.pop(name)
        values["shard"] = list(self.shard)
        return values


def parse_shard(value: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``: the second of four shares (0-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match:
        raise ConfigError(f"--shard must look like i/N (0-based, e.g. 0/4), but got {value!r}.")
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise ConfigError(f"--shard i/N needs 0 <= i < N, but got {value!r}; the shares of 4 machines are 0/4 .. 3/4.")
    return index, count
