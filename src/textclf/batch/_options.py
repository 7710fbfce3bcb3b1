"""What a batch job is asked to do: one frozen, validated dataclass, whose fields are ``textclf batch``'s flags."""

from __future__ import annotations

import codecs
import re
from dataclasses import asdict, dataclass

from ..choices import BACKEND_CHOICES, DTYPES
from ..data.reader import FORMATS as READ_FORMATS
from ..data.reader import ReadOptions
from ..errors import ConfigError
from ..options import setting
from ..validation import check_fields

FORMATS = ("auto", *READ_FORMATS)
OUTPUT_FORMATS = ("jsonl", "csv")
ENGINES = ("local", "ray")
DEFAULT_CHUNK_SIZE = 2000

# Options that cannot change a single output byte; all others are part of the job's identity.
_NOT_IDENTITY = ("workers", "evaluate", "engine", "ray_address")


def parse_shard(value: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``: the second of four shares (0-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match:
        raise ConfigError(f"--shard must look like i/N (0-based, e.g. 0/4), but got {value!r}.")
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise ConfigError(f"--shard i/N needs 0 <= i < N, but got {value!r}; the shares of 4 machines are 0/4 .. 3/4.")
    return index, count


@dataclass(frozen=True)
class BatchOptions:
    """How to read the inputs, run the model and write the outputs.

    ``text_column``/``label_column``/``id_column``: a CSV header name, a 0-based column index
    (a file without a header), or a JSON key. ``header``: None decides per file.
    ``shard``: ``(i, n)`` processes the i-th of n contiguous shares of the job's chunks.
    """

    format: str = setting(
        "auto",
        "Input format; auto: by suffix (.csv, .tsv, .jsonl/.jsonlines/.ndjson, .label: LABEL text), any other "
        "file one text per line. text-csv: JumpStart's header-less text/csv, one (quoted) text per record.",
        choices=FORMATS,
    )
    text_column: str | None = setting(
        None,
        "Text column (header name, or 0-based index without a header) or JSON key "
        "[default: found by name, e.g. text, sentence].",
        aliases=("--text-field",),
    )
    label_column: str | None = setting(
        None,
        "Label column or JSON key, for --evaluate [default: found by name, e.g. label].",
        aliases=("--label-field",),
    )
    id_column: str | None = setting(
        None, 'Column or JSON key copied to each output line as "id".', aliases=("--id-field",)
    )
    header: bool | None = setting(
        None,
        "Whether CSV/TSV files start with a header "
        "[default: yes if a column is given by name or the first row names a text column].",
    )
    encoding: str = setting("utf-8", "Encoding of the input files.")
    output_format: str = setting(
        "jsonl",
        "jsonl: {line, [id,] predicted_label, probabilities, labels, [source]} per line; "
        "csv: line,[id,]predicted_label,p_0,...,p_K-1[,input fields]. A multi-label model writes "
        "predicted_labels (a list; in csv one field, joined by commas) and a sigmoid score a label.",
        choices=OUTPUT_FORMATS,
    )
    join_source: bool = setting(False, "Add the whole input record to each output line.")
    chunk_size: int = setting(
        DEFAULT_CHUNK_SIZE,
        "Records per chunk, the unit of work written at once (and of resuming and sharding).",
        low=1,
    )
    workers: int = setting(
        1,
        "Processes (with --engine ray: Ray actors), each with its own model; the CPU threads are split among them.",
        low=1,
    )
    engine: str = setting(
        "local",
        "What runs the workers: local, processes on this machine; ray, an actor pool of Ray Data "
        "(pip install 'textclf[ray]'), on a cluster with --ray-address.",
        choices=ENGINES,
    )
    ray_address: str | None = setting(
        None,
        "With --engine ray: the cluster to run on, as host:port (the address `ray start --head` printed), "
        "ray://host:port, or auto (the cluster started on this machine) "
        "[default: $RAY_ADDRESS if set, else a Ray instance of this job's own].",
    )
    shard: tuple[int, int] = setting(
        (0, 1),
        "i/N: score only the i-th (0-based) of N contiguous shares of the job's chunks; "
        "give each shard its own --output.",
        parse=parse_shard,
        shown="0/1",
    )
    batch_size: int = setting(64, "Texts per forward pass.", low=1)
    evaluate: bool = setting(
        False,
        "Print accuracy, F1, MCC and the confusion matrix against the inputs' labels, as `textclf evaluate` does "
        "(a multi-label model: micro/macro F1, subset accuracy and Hamming loss; labels as a JSON list or "
        "joined by commas).",
    )
    threshold: float | None = setting(
        None,
        "Multi-label models: one decision threshold (0..1) for every label's sigmoid score "
        "[default: each label's, chosen on the validation data in training].",
        low=0.0,
        high=1.0,
    )
    at_least_one: bool = setting(
        False, "Multi-label models: a text with no label at or above its threshold gets its top label."
    )
    backend: str = setting(
        "auto",
        "What runs the model: torch, or an export made by `textclf export`; "
        "auto: the fastest export present, else torch.",
        choices=BACKEND_CHOICES,
    )
    dtype: str = setting(
        "auto",
        "torch backend's precision; auto: bfloat16 where the CPU has it natively (~2x faster; with AMX only "
        "batches of 256 tokens or more), float32 otherwise.",
        choices=DTYPES,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        index, count = self.shard
        if not 0 <= index < count:
            raise ConfigError(f"shard must be i/N with 0 <= i < N, but got shard={index}/{count}.")
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError(f"--ray-address {self.ray_address} needs --engine ray; add it, or leave out the address.")
        try:
            newline = "\n".encode(codecs.lookup(self.encoding).name)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}; pass a Python codec name such as utf-8 or latin-1."
            ) from None
        if newline != b"\n":
            raise ConfigError(
                f"encoding {self.encoding!r} does not end lines with a single \\n byte; "
                "convert the files to utf-8 first."
            )

    def read_options(self) -> ReadOptions:
        """How :mod:`textclf.data.reader` reads this job's inputs (``--format auto``: by suffix)."""
        return ReadOptions(
            self.text_column,
            self.label_column,
            self.encoding,
            format=None if self.format == "auto" else self.format,
            header=self.header,
            id_column=self.id_column,
        )

    def identity(self) -> dict:
        """The options that decide the output bytes (recorded in the manifest)."""
        values = asdict(self)
        for name in _NOT_IDENTITY:
            values.pop(name)
        values["shard"] = list(self.shard)
        return values
