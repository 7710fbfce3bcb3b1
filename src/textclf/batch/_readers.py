"""Batch's reading options, mapped onto :mod:`textclf.data.reader` (the one reader of every command).

``BatchOptions`` names the reading settings as ``ReadOptions`` does (``format``, ``text_column``,
``label_column``, ``id_column``, ``header``, ``encoding``); ``--format auto`` is ``format=None``:
by the file's suffix. A file is never read as labelled here (``labels=False``): a ``.txt`` file is
one text per line, and ``--evaluate`` needs a label column or key.
"""

from __future__ import annotations

from pathlib import Path

from ..data.reader import Layout, ReadOptions, Record, read_records
from ..data.reader import resolve_layout as _resolve
from ._options import BatchOptions

__all__ = ["Layout", "Record", "read_options", "read_records", "resolve_layout"]


def read_options(options: BatchOptions) -> ReadOptions:
    """The :class:`ReadOptions` that read the inputs of a job run with ``options``."""
    return ReadOptions(
        options.text_column,
        options.label_column,
        options.encoding,
        format=None if options.format == "auto" else options.format,
        header=options.header,
        id_column=options.id_column,
    )


def resolve_layout(path: Path, options: BatchOptions) -> Layout:
    """Find the text, label and id fields of ``path`` (see :func:`textclf.data.reader.resolve_layout`)."""
    return _resolve(path, read_options(options))
