"""The job's working folder under ``--output``: manifest, chunk parts, atomic writes, lock.

    OUTPUT/.textclf-batch/
        manifest.json      what the job is (model, inputs, options) and its plan; its result once complete
                           (counts, labels, backend, the task and a multi-label model's thresholds)
        lock               held (flock) while a run works here
        parts/F/C.out      chunk C of input file F, in output format   } written by whoever scores
        parts/F/C.errors   its unreadable records (only if any)        } the chunk; C.json last, so
        parts/F/C.json     its counts and evaluation sums: chunk done  } it marks the chunk done
        files/F.json       file F's counts and sums, written before OUTPUT/<name>.out
        tmp/               temporary files, each renamed into place (os.replace) when whole

Every file is written to ``tmp/`` and renamed into place, so a reader (or a rerun after a
kill) sees a file whole or not at all. When the job is complete, everything but the manifest
(which then holds the result, so a rerun answers at once) is removed.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ._inputs import InputFile
from ._options import BatchOptions

WORKDIR = ".textclf-batch"
FORMAT_VERSION = 1
_counter = itertools.count()


class Workdir:
    """Paths inside ``OUTPUT/.textclf-batch`` and the writes that go there."""

    def __init__(self, output: Path):
        self.output = output
        self.root = output / WORKDIR
        self.manifest = self.root / "manifest.json"
        self.tmp = self.root / "tmp"

    def part(self, file_index: int, chunk_index: int, kind: str) -> Path:
        return self.root / "parts" / str(file_index) / f"{chunk_index}.{kind}"

    def file_summary(self, file_index: int) -> Path:
        return self.root / "files" / f"{file_index}.json"

    def write(self, path: Path, data: str | bytes) -> None:
        """Write ``path`` whole or not at all: a temporary file, flushed to disk, then renamed."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{os.getpid()}-{next(_counter)}"
        with tmp.open("wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def concatenate(self, parts: list[Path], path: Path) -> None:
        """Write the parts one after the other to ``path``, whole or not at all."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{os.getpid()}-{next(_counter)}"
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def read_json(self, path: Path) -> Any | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def lock(self) -> None:
        """Hold this folder for this process (released when it exits, however it exits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = (self.root / "lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{self.output}: another `textclf batch` is writing there now; wait for it, or pass another --output."
            ) from None

    def unlock(self) -> None:
        self._lock.close()

    def clear_work(self) -> None:
        """Remove chunk parts, file summaries and temporary files (not the manifest or the lock)."""
        for name in ("parts", "files", "tmp"):
            shutil.rmtree(self.root / name, ignore_errors=True)


def check_output(output: Path) -> None:
    """``output`` must be a new or empty folder, or one holding a batch job (checked against the manifest)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: --output is a file; pass a folder for the results.")
    if not output.is_dir() or (output / WORKDIR / "manifest.json").is_file():
        return
    others = sorted(p.name for p in output.iterdir() if p.name != WORKDIR)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ConfigError(
            f"{output}: --output already holds files ({shown}) and no batch manifest; pass a new or empty folder."
        )


def job_identity(model_dir: Path, inputs: list[InputFile], options: BatchOptions) -> dict:
    """What decides the output bytes: textclf's version, the model's files, the inputs (size, mtime), the options."""
    model_files = sorted(p for p in model_dir.iterdir() if p.is_file())
    return {
        "textclf": __version__,
        "model": {"path": str(model_dir.resolve()), "files": [[p.name, *_stamp(p)] for p in model_files]},
        "inputs": [{"name": f.name, "path": str(f.path.resolve()), "size_mtime_ns": _stamp(f.path)} for f in inputs],
        "options": options.identity(),
    }


def difference(old: dict, new: dict) -> str | None:
    """What differs between two job identities, in words, or None."""
    if old.get("format_version") != FORMAT_VERSION:
        return f"it was written by another version of textclf batch (format {old.get('format_version')})"
    old = old["job"]
    if old["textclf"] != new["textclf"]:
        return f"it was started by textclf {old['textclf']}, this is {new['textclf']}"
    if old["model"]["path"] != new["model"]["path"]:
        return f"its model is {old['model']['path']}"
    if old["model"] != new["model"]:
        return f"the model folder {new['model']['path']} changed since the job started"
    old_inputs = {f["name"]: f for f in old["inputs"]}
    new_inputs = {f["name"]: f for f in new["inputs"]}
    if old_inputs.keys() != new_inputs.keys():
        gone = sorted(old_inputs.keys() - new_inputs.keys())
        added = sorted(new_inputs.keys() - old_inputs.keys())
        what = f"{len(gone)} of its input files are gone ({gone[0]}, ...)" if gone else ""
        return what or f"{len(added)} input files are new ({added[0]}, ...)"
    for name, entry in new_inputs.items():
        if entry != old_inputs[name]:
            return f"input {entry['path']} changed since the job started (size or modification time)"
    for key, value in new["options"].items():
        was = old["options"].get(key, ADDED_OPTIONS.get(key))
        if was != value:
            return f"it was run with {key}={was!r}, not {value!r}"
    return None


ADDED_OPTIONS = {"at_least_one": False}
"""Options a manifest may predate, as the jobs it records ran (threshold: None, the default, needs no entry)."""


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]
