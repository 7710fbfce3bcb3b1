"""The Dockerfile against the contract: images cannot be built here (no registry), so these check what
SageMaker relies on; `make lint` runs hadolint on it."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from conftest import REPO
from textclf.cli import main

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def instruction(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def test_the_entrypoint_is_exec_form_and_dispatches_train_and_serve():
    (entrypoint,) = instruction("ENTRYPOINT")
    command = json.loads(entrypoint)  # exec form: SageMaker's argument replaces CMD and reaches this command
    assert command == ["textclf", "sagemaker"]
    assert json.loads(instruction("CMD")[0]) == ["serve"]
    for argument in ("train", "serve"):
        result = CliRunner().invoke(main, [*command[1:], argument, "--help"])
        assert result.exit_code == 0, result.output


def test_torch_is_pinned_as_the_makefile_pins_it():
    pinned = re.search(r"torch==([0-9.]+)", (REPO / "Makefile").read_text(encoding="utf-8")).group(1)
    assert f"ARG TORCH_VERSION={pinned}" in DOCKERFILE
    assert '"torch==${TORCH_VERSION}"' in DOCKERFILE


def test_the_build_context_keeps_what_the_image_copies():
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[1] == "*"  # everything out but what is let back in
    for copied in ("pyproject.toml", "README.md", "src/"):
        assert f"!{copied}" in ignored
        assert copied.rstrip("/") in " ".join(instruction("COPY"))
