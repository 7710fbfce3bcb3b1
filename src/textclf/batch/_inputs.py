"""Which files a batch job reads: ``--input`` as a file, a directory or a glob."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    """One input file and its name relative to the input root (its outputs are ``OUTPUT/<name>.out``)."""

    path: Path
    name: str


def find_inputs(spec: str, output: Path) -> list[InputFile]:
    """The files ``spec`` names, sorted by name; files under ``output`` and hidden ones are left out.

    A directory gives every file below it; a glob (``*``, ``?``, ``[``, ``**``) the files it
    matches, named relative to the folder before its first wildcard.
    """
    path = Path(spec)
    out = output.resolve()
    if path.is_file():
        return [InputFile(path, path.name)]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and _visible(p.relative_to(path)) and not _under(p, out)]
        if not found:
            raise DataError(f"{spec}: directory holds no files to score.")
        return _named(found, path)
    if any(ch in spec for ch in _GLOB_CHARS):
        found = [Path(p) for p in glob.glob(spec, recursive=True)]
        found = [p for p in found if p.is_file() and not _under(p, out)]
        if not found:
            raise DataError(
                f"{spec}: no files match the pattern; "
                "check the path and quote the pattern so the shell does not expand it."
            )
        return _named(found, _glob_root(spec))
    raise DataError(f"{spec}: no such file or directory.")


def _named(paths: list[Path], root: Path) -> list[InputFile]:
    return sorted((InputFile(p, p.relative_to(root).as_posix()) for p in paths), key=lambda f: f.name)


def _glob_root(spec: str) -> Path:
    """The folder before the first path part that holds a wildcard."""
    parts = Path(spec).parts
    fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in _GLOB_CHARS))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _visible(relative: Path) -> bool:
    return not any(part.startswith(".") for part in relative.parts)


def _under(path: Path, folder: Path) -> bool:
    return os.path.commonpath([path.resolve(), folder]) == str(folder)
