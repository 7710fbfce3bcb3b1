"""The folders and files SageMaker gives a training container, read with one-line errors.

Under the base folder (``SAGEMAKER_BASE_DIR`` when set, else ``/opt/ml``, as the SageMaker training
toolkit reads it)::

    input/config/hyperparameters.json   name -> value, every value a string (see textclf.sagemaker.settings)
    input/config/inputdataconfig.json   the channels the job was given
    input/config/resourceconfig.json    {"current_host": "algo-1", "hosts": ["algo-1", ...]}
    input/data/<channel>/               training, validation (optional), model (optional)
    model/                              the model folder; SageMaker tars it into model.tar.gz
    output/data/                        other artifacts (metrics, report), tarred into output.tar.gz
    output/failure                      why the job failed: its first 1,024 characters become the FailureReason
    checkpoints/                        synced with S3 (checkpoint_s3_uri): a restarted job finds them here

The checkpoints folder is ``/opt/ml/checkpoints`` unless ``SAGEMAKER_BASE_DIR`` moves the whole tree
(tests and SageMaker local mode) or ``TEXTCLF_CHECKPOINT_DIR`` names another one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import SUFFIXES
from ..errors import ConfigError, DataError

__all__ = ["DEFAULT_BASE", "Cluster", "Layout"]

DEFAULT_BASE = Path("/opt/ml")
FAILURE_LIMIT = 1024  # characters of output/failure that SageMaker keeps as the FailureReason


@dataclass(frozen=True)
class Cluster:
    """The hosts of a training job and this one's place: ``rank`` is ``current_host``'s index in the sorted
    ``hosts``; ``hosts[0]`` is the rendezvous of multi-node training."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def master(self) -> str:
        return self.hosts[0]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str) -> Cluster:
        hosts, current = config.get("hosts"), config.get("current_host")
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigError(f"{source}: 'hosts' must be a non-empty list of host names, not {hosts!r}.")
        if current not in hosts:
            raise ConfigError(f"{source}: current_host {current!r} is not one of the hosts {hosts}.")
        return cls(tuple(sorted(hosts)), current)


@dataclass(frozen=True)
class Layout:
    """The paths of one SageMaker container (see the module docstring)."""

    base: Path
    checkpoints: Path

    @classmethod
    def resolve(cls, base: str | Path | None = None, env: Mapping[str, str] | None = None) -> Layout:
        """``base``, else ``$SAGEMAKER_BASE_DIR``, else /opt/ml; checkpoints as the module docstring says."""
        env = os.environ if env is None else env
        given = base or env.get("SAGEMAKER_BASE_DIR")
        root = Path(given) if given else DEFAULT_BASE
        checkpoints = env.get("TEXTCLF_CHECKPOINT_DIR") or (root / "checkpoints" if given else "/opt/ml/checkpoints")
        return cls(root, Path(checkpoints))

    # -- paths ---------------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_data(self) -> Path:
        return self.base / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def success_file(self) -> Path:
        return self.base / "output" / "success"

    def channel_dir(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    # -- config files --------------------------------------------------------------------

    def read_config(self, name: str, required: bool = True) -> dict[str, Any]:
        """``input/config/<name>`` as a JSON object ({} when absent and not ``required``)."""
        path = self.config_dir / name
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if required:
                raise ConfigError(f"{path}: not found; is this a SageMaker training container?") from None
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON object ({exc}).") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a JSON object, not {type(value).__name__}.")
        return value

    def hyperparameters(self) -> dict[str, Any]:
        """hyperparameters.json as it is ({} without the file: a job may have none)."""
        return self.read_config("hyperparameters.json", required=False)

    def cluster(self) -> Cluster:
        """resourceconfig.json's hosts (one host, ``algo-1``, without the file)."""
        config = self.read_config("resourceconfig.json", required=False) or {
            "current_host": "algo-1",
            "hosts": ["algo-1"],
        }
        return Cluster.from_config(config, str(self.config_dir / "resourceconfig.json"))

    def channels(self) -> set[str]:
        """The channels inputdataconfig.json names, else the folders under input/data."""
        named = self.read_config("inputdataconfig.json", required=False)
        if named:
            return set(named)
        root = self.base / "input" / "data"
        return {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()

    def data(self, name: str, required: bool = False) -> Path | None:
        """The data of channel ``name``: its folder when it holds JumpStart's data.csv, else its one data file.

        None when the channel is absent and not ``required``; a DataError for a missing required channel, an
        empty one, or one with several data files and no data.csv."""
        folder = self.channel_dir(name)
        if name not in self.channels() and not folder.is_dir():
            if required:
                raise DataError(
                    f"no {name!r} channel ({folder} is missing); give the training job a {name!r} input channel "
                    "holding data.csv (JumpStart's label,text rows) or one .csv/.tsv/.jsonl file."
                )
            return None
        if (folder / "data.csv").is_file():
            return folder
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))
        data = [p for p in files if p.suffix.lower() in SUFFIXES]
        if len(data) == 1:
            return data[0]
        if not data:
            found = f"only {', '.join(p.name for p in files[:5])}" if files else "nothing"
            raise DataError(
                f"channel {name!r} ({folder}) holds {found}; expected data.csv or one data file "
                f"({', '.join(SUFFIXES)})."
            )
        raise DataError(
            f"channel {name!r} ({folder}) holds {len(data)} data files ({', '.join(p.name for p in data[:5])}); "
            "expected data.csv or exactly one data file."
        )

    # -- results -------------------------------------------------------------------------

    def clear_results(self) -> None:
        """Remove ``output/failure`` and ``output/success`` of an earlier run in this folder."""
        for path in (self.failure_file, self.success_file):
            path.unlink(missing_ok=True)

    def write_failure(self, reason: str) -> None:
        """``output/failure``, unless something wrote it first (the toolkit's rule: the first cause wins)."""
        path = self.failure_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(" ".join(reason.split())[:FAILURE_LIMIT] + "\n", encoding="utf-8")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
