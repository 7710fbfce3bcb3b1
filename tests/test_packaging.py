"""`textclf package` and model.tar.gz: the archive's layout and bytes, every command (and transformers) on it,
the SageMaker inference code against textclf serve (in the toolkit's real handler when it is installed), and
archives that must not unpack."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from serving.serving_helpers import LiveServer, free_port, wait_for_ping
from textclf import ArtifactError, Classifier
from textclf.cli import main
from textclf.packaging import CODE_FILES, is_packaged_code, package, unpack, unpacked
from textclf.serving import ServeConfig, create_app
from textclf.serving.handler import load_user_code

TEXTS = ["the food was great", "phone food", "good", "sad phone, ugly and broken and the service was poor really"]
REQUESTS = [  # (body, Content-Type, Accept): JumpStart's formats, the pipeline's, CSV, and two bad requests
    ("the food was great", "application/x-text", "application/json;verbose"),
    (json.dumps(TEXTS), "application/json", "application/json;verbose"),
    (json.dumps(TEXTS), "application/json", "application/json"),
    (json.dumps({"inputs": TEXTS[:2]}), "application/json", "application/json"),
    (json.dumps({"inputs": "good", "parameters": {"top_k": None}}), "application/json", "application/json"),
    ("\n".join(TEXTS), "text/csv", "text/csv"),
    (json.dumps(TEXTS[:2]), "application/json", "application/jsonlines"),
    ("", "application/x-text", "application/json;verbose"),
    ("good", "application/x-text", "image/png"),
]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Archives unpack into this test's own cache, never the user's."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def classifier_folder(base: Path, folder: Path, labels: list[str], metadata: dict, *, multi_label=False, left=False):
    """A sequence classifier made from ``base`` with a random head scaled up (so its scores spread), and a
    ``textclf.json`` holding ``metadata``: seconds to make, where training would take longer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left" if left else "right"
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0 if parameter.dim() > 1 and parameter.shape[0] == len(labels) else 1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "textclf.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def models(bert_artifact, tiny_bert, tiny_gpt2, tmp_path_factory) -> dict[str, Path]:
    """A trained single-label folder, a multi-label BERT (short max length, a threshold a label) and a GPT-2 that
    pads on the left."""
    root = tmp_path_factory.mktemp("packaging-models")
    tagged = classifier_folder(
        tiny_bert,
        root / "tagged",
        ["food", "phone", "service"],
        {"max_seq_length": 6, "thresholds": {"thresholds": [0.4, 0.5, 0.6]}},
        multi_label=True,
    )
    gpt2 = classifier_folder(tiny_gpt2, root / "gpt2", ["negative", "positive"], {"max_seq_length": 16}, left=True)
    return {"trained": bert_artifact, "tagged": tagged, "gpt2": gpt2}


@pytest.fixture(scope="module")
def archives(models, tmp_path_factory) -> dict[str, Path]:
    """Each model packed with the inference code."""
    root = tmp_path_factory.mktemp("packaging-archives")
    return {name: package(folder, root / f"{name}.tar.gz", inference_code=True).path for name, folder in models.items()}


def members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return tar.getmembers()


# -- the archive -------------------------------------------------------------------------------


def test_the_folder_files_sit_at_the_root_and_work_files_stay_out(bert_artifact, tmp_path):
    folder = tmp_path / "reviews"
    shutil.copytree(bert_artifact, folder)
    expected = sorted(p.name for p in folder.iterdir())
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-00000010.pt").write_bytes(b"resume state")
    (folder / ".textclf.json.tmp-1a2b3c4d").write_text("{}")
    (folder / ".export-1a2b3c4d-x").mkdir()
    (folder / ".export-1a2b3c4d-x" / "model.onnx").write_bytes(b"half written")
    (folder / "notes").mkdir()
    (folder / "notes" / "card.md").write_text("# a model card")
    (folder / "notes" / "__pycache__").mkdir()
    (folder / "notes" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")

    packed = package(folder, tmp_path / "model.tar.gz")

    infos = members(packed.path)
    assert [i.name for i in infos] == sorted([*expected, "notes", "notes/card.md"])
    assert list(packed.members) == sorted([*expected, "notes/card.md"])
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, 0, "", "")}
    assert {i.mode for i in infos if i.isfile()} == {0o644} and next(i for i in infos if i.isdir()).mode == 0o755
    with tarfile.open(packed.path) as tar:
        assert tar.extractfile("textclf.json").read() == (folder / "textclf.json").read_bytes()
    assert packed.render() == f"{packed.path}: {len(packed.members)} files, {packed.size / 1e6:.1f} MB."


def test_packing_twice_gives_the_same_bytes_whatever_the_files_times(bert_artifact, tmp_path):
    first = package(bert_artifact, tmp_path / "first.tar.gz", inference_code=True).path
    copy = tmp_path / "copy"
    shutil.copytree(bert_artifact, copy)
    os.utime(copy / "config.json", (1_000_000, 1_000_000))
    second = package(copy, tmp_path / "second.tar.gz", inference_code=True).path
    assert first.read_bytes() == second.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_an_existing_output_is_replaced_only_with_overwrite(bert_artifact, tmp_path):
    output = tmp_path / "model.tar.gz"
    output.write_bytes(b"older")
    with pytest.raises(ArtifactError, match="already exists; pass --overwrite"):
        package(bert_artifact, output)
    assert output.read_bytes() == b"older"
    package(bert_artifact, output, overwrite=True)
    assert "config.json" in [i.name for i in members(output)]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "model folder not found"),
        ("not a model", "not a model folder (no textclf.json or config.json)"),
        ("no weights", "holds no weights"),
        ("output inside", "is inside the model folder"),
        ("broken link", "a broken link or not a regular file"),
        ("output is a folder", "is a folder; --output names the archive file"),
    ],
)
def test_bad_packing_is_a_one_line_error_and_writes_nothing(bert_artifact, tmp_path, case, message):
    folder, output = tmp_path / "model", tmp_path / "out" / "model.tar.gz"
    if case != "missing":
        shutil.copytree(bert_artifact, folder)
    if case == "not a model":
        (folder / "config.json").unlink()
        (folder / "textclf.json").unlink()
    elif case == "no weights":
        (folder / "model.safetensors").unlink()
    elif case == "output inside":
        output = folder / "model.tar.gz"
    elif case == "broken link":
        (folder / "vocab.txt").symlink_to(tmp_path / "gone")
    elif case == "output is a folder":
        output.mkdir(parents=True)
    with pytest.raises(ArtifactError, match=re.escape(message)) as caught:
        package(folder, output)
    assert "\n" not in str(caught.value)
    assert not output.is_file() and not list(output.parent.glob(".*tmp-*"))


def test_inference_code_is_refused_for_a_folder_with_its_own_code(bert_artifact, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(bert_artifact, folder)
    (folder / "code").mkdir()
    (folder / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return 1\n")
    with pytest.raises(ArtifactError, match="has its own code/; leave out --inference-code"):
        package(folder, tmp_path / "model.tar.gz", inference_code=True)
    kept = package(folder, tmp_path / "model.tar.gz")  # without the flag it is packed as it is
    assert "code/inference.py" in kept.members and "code/textclf_codecs.py" not in kept.members


def test_an_archive_packs_again_with_its_generated_code_replaced(archives, tmp_path):
    again = package(archives["trained"], tmp_path / "again.tar.gz", inference_code=True)
    assert again.path.read_bytes() == archives["trained"].read_bytes()


# -- every command takes the archive -----------------------------------------------------------


def test_every_command_reads_the_archive_as_the_folder(archives, models, sentiment_files, tmp_path, cache):
    archive, folder = archives["trained"], models["trained"]
    want = Classifier.load(folder, dtype="float32").predict_proba(TEXTS)
    assert Classifier.load(archive, dtype="float32").predict_proba(TEXTS) == pytest.approx(want, abs=1e-6)

    runner = CliRunner()
    from_folder = runner.invoke(main, ["predict", "--model-dir", str(folder), "--json", *TEXTS])
    from_archive = runner.invoke(main, ["predict", "--model-dir", str(archive), "--json", *TEXTS])
    assert from_archive.exit_code == 0, from_archive.output
    assert from_archive.stdout == from_folder.stdout

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    scored = runner.invoke(
        main, ["batch", "--model-dir", str(archive), "--input", str(texts), "--output", str(tmp_path / "s")]
    )
    assert scored.exit_code == 0, scored.output
    again = runner.invoke(
        main, ["batch", "--model-dir", str(archive), "--input", str(texts), "--output", str(tmp_path / "s")]
    )
    assert again.exit_code == 0 and "already complete" in again.output  # the same unpacked folder: same job

    unpacked_to = list((cache / "archives").glob("*/trained"))
    assert len(unpacked_to) == 1 and unpacked(archive) == unpacked_to[0]

    evaluate = ["evaluate", "--data", str(sentiment_files[1]), "--json", "--backend", "torch", "--dtype", "float32"]
    from_archive = runner.invoke(main, [*evaluate, "--model-dir", str(archive)])
    assert from_archive.exit_code == 0, from_archive.output
    assert from_archive.stdout == runner.invoke(main, [*evaluate, "--model-dir", str(folder)]).stdout

    report = runner.invoke(main, ["report", "--model-dir", str(archive), "--output", str(tmp_path / "r.html")])
    assert report.exit_code == 0 and "<html" in (tmp_path / "r.html").read_text()

    refused = runner.invoke(main, ["export", "--model-dir", str(archive), "--format", "onnx"])
    assert refused.exit_code == 2 and "an archive; exports are written into a model folder" in refused.output
    no_output = runner.invoke(main, ["report", "--model-dir", str(archive)])
    assert no_output.exit_code == 2 and no_output.output.strip().endswith(
        "an archive; pass --output FILE (the default is MODEL_DIR/report.html)."
    )


def test_the_unpacked_archive_loads_in_a_transformers_pipeline(archives, models, tmp_path):
    from transformers import pipeline

    folder = unpack(archives["trained"], tmp_path / "unpacked")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in models["trained"].iterdir()), "code"])
    answers = pipeline("text-classification", model=str(folder), device="cpu")(TEXTS)
    want = Classifier.load(models["trained"], dtype="float32").predict(TEXTS)
    assert [a["label"] for a in answers] == [p.predicted_label for p in want]
    assert [a["score"] for a in answers] == pytest.approx([max(p.probabilities) for p in want], abs=1e-5)


def test_a_changed_archive_unpacks_again(bert_artifact, tmp_path):
    archive = package(bert_artifact, tmp_path / "model.tar.gz").path
    first = unpacked(archive)
    assert unpacked(archive) == first
    package(bert_artifact, archive, inference_code=True, overwrite=True)
    second = unpacked(archive)
    assert second != first and (second / "code" / "inference.py").is_file()


# -- the inference code, against textclf serve ---------------------------------------------------

CHILD = r"""
import importlib.abc, json, sys

class NoTextclf(importlib.abc.MetaPathFinder):
    '''SageMaker's container has no textclf: importing it fails here.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "textclf":
            raise ModuleNotFoundError(f"No module named {name!r} (not in the container)")

sys.meta_path.insert(0, NoTextclf())
mode, folders, requests, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
UTF8_TYPES = ("application/json", "text/csv")  # the toolkit decodes these bodies to str, passes bytes otherwise
report = {}
if mode == "functions":
    for name, folder in folders.items():
        sys.path.insert(0, folder + "/code")
        for module in ("inference", "textclf_codecs"):
            sys.modules.pop(module, None)
        import inference

        model = inference.model_fn(folder)
        answers = []
        for body, content_type, accept in requests:
            data = body if content_type in UTF8_TYPES else body.encode()
            try:
                prediction = inference.predict_fn(inference.input_fn(data, content_type), model)
                answers.append([200, inference.output_fn(prediction, accept).decode()])
            except ValueError as exc:
                answers.append([400, str(exc)])
        report[name] = {"answers": answers, "probabilities": model.probabilities(texts).tolist()}
        sys.path.remove(folder + "/code")
else:
    import transformers.file_utils

    if not hasattr(transformers.file_utils, "is_tf_available"):  # toolkit 2.6.0 imports it; transformers 5 dropped it
        transformers.file_utils.is_tf_available = lambda: False
    from mms.context import Context, RequestProcessor
    from mms.metrics.metrics_store import MetricsStore
    from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

    for name, folder in folders.items():
        for module in ("inference", "textclf_codecs"):
            sys.modules.pop(module, None)
        service = HuggingFaceHandlerService()
        context = Context(name, folder, {}, 1, -1, "1.1.4")
        service.initialize(context)
        answers = []
        for body, content_type, accept in requests:
            context.request_processor = [RequestProcessor({"Content-Type": content_type, "Accept": accept})]
            context.metrics = MetricsStore(1, name)
            try:
                answer = service.handle([{"body": body.encode()}], context)[0]
                answers.append([200, answer.decode(), context.get_response_content_type(0)])
            except Exception as exc:  # the toolkit's PredictionException, which the model server answers as is
                answers.append([exc.error_code, exc.message])
        report[name] = {"answers": answers, "model": type(service.model).__name__}
report["textclf imported"] = any(m.split(".")[0] == "textclf" for m in sys.modules)
print(json.dumps(report))
"""


def run_child(mode: str, folders: dict[str, Path]) -> dict:
    args = [json.dumps({k: str(v) for k, v in folders.items()}), json.dumps(REQUESTS), json.dumps(TEXTS)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, *args], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def served(archive: Path) -> list[list]:
    """What `textclf serve` on ``archive`` answers to each of REQUESTS: [status, body]."""
    answers = []
    config = ServeConfig.resolve(env={"SM_MODEL_DIR": str(archive)}, dtype="float32")  # as in a container
    with LiveServer(create_app(config)) as server:
        for body, content_type, accept in REQUESTS:
            headers = {"Content-Type": content_type, "Accept": accept}
            response = httpx.post(server.url + "/invocations", content=body.encode(), headers=headers, timeout=30)
            answers.append([response.status_code, response.text])
    return answers


def _number(cell: str):
    try:
        return float(cell)
    except ValueError:
        return cell


def _compare(got, want) -> None:
    if isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            _compare(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _compare(g, w)
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-5)
    else:
        assert got == want


def same(got: list, want: list) -> None:
    (status, body), (want_status, want_body) = got[:2], want
    if want_status != 200:
        assert status == 400 and json.loads(want_body)["Message"] in body, (body, want_body)
        return
    assert status == 200, body
    if want_body.lstrip()[:1] in "[{" and "\n" not in want_body.strip():
        _compare(json.loads(body), json.loads(want_body))
    elif want_body.lstrip().startswith("{"):  # JSON Lines
        _compare([json.loads(x) for x in body.splitlines()], [json.loads(x) for x in want_body.splitlines()])
    else:  # text/csv
        _compare(
            [[_number(c) for c in line.split(",")] for line in body.splitlines()],
            [[_number(c) for c in line.split(",")] for line in want_body.splitlines()],
        )


@pytest.mark.subprocess
def test_the_inference_code_answers_as_textclf_serve_does_without_textclf(archives, models, tmp_path):
    folders = {name: unpack(archive, tmp_path / name) for name, archive in archives.items()}
    report = run_child("functions", folders)
    assert report.pop("textclf imported") is False
    for name, archive in archives.items():
        want = Classifier.load(models[name], dtype="float32").predict_proba(TEXTS)
        assert np.asarray(report[name]["probabilities"]) == pytest.approx(want, abs=1e-5), name
        for got, expected in zip(report[name]["answers"], served(archive)):
            same(got, expected)


@pytest.mark.subprocess
def test_the_toolkits_own_handler_runs_the_inference_code(archives, tmp_path):
    """sagemaker-huggingface-inference-toolkit's HuggingFaceHandlerService, in-process as its tests drive it."""
    pytest.importorskip(
        "sagemaker_huggingface_inference_toolkit",
        reason="sagemaker-huggingface-inference-toolkit is not installed (see docs/commands/package.md)",
    )
    pytest.importorskip("mms", reason="multi-model-server (the toolkit's model server) is not installed")
    folders = {name: unpack(archives[name], tmp_path / name) for name in ("trained", "tagged")}
    report = run_child("toolkit", folders)
    assert report.pop("textclf imported") is False
    for name in folders:
        assert report[name]["model"] == "TextClassifier"
        answers = report[name]["answers"]
        for got, expected in zip(answers, served(archives[name])):
            same(got, expected)
        assert answers[0][2] == "application/json;verbose"  # the toolkit answers with the Accept type


# -- serve ------------------------------------------------------------------------------------


def test_serve_runs_the_folder_itself_not_the_packaged_code(archives, tmp_path):
    folder = unpacked(archives["trained"])
    assert is_packaged_code(folder) and load_user_code(folder) is None
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    with (edited / "code" / "inference.py").open("a") as f:
        f.write("\n# changed by its owner\n")
    assert not is_packaged_code(edited) and load_user_code(edited) is not None  # now it is custom code


@pytest.mark.subprocess
def test_textclf_serve_model_dir_model_tar_gz_answers_invocations(archives, models, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "textclf", "serve", "--model-dir", str(archives["trained"]), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TEXTCLF_CACHE": str(tmp_path / "serve-cache")},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_ping(url)
        headers = {"Content-Type": "application/x-text", "Accept": "application/json;verbose"}
        answer = httpx.post(url + "/invocations", content=TEXTS[0].encode(), headers=headers, timeout=30)
        assert answer.status_code == 200
        want = Classifier.load(models["trained"], dtype="float32").predict(TEXTS[0])[0].to_dict()
        _compare(answer.json(), want)
        assert httpx.get(url + "/info").json()["name"] == "trained"  # the archive's name, not the cache's
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


# -- archives that must not unpack ----------------------------------------------------------------


def tar_of(path: Path, *entries: tuple[str, bytes | None, bytes | str]) -> Path:
    """A gzipped tar of ``(name, type, content or link target)`` entries after a valid config.json."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return path


@pytest.mark.parametrize(
    "entry, problem",
    [
        (("/tmp/evil.sh", tarfile.REGTYPE, b"x"), "has an absolute path"),
        (("../evil.sh", tarfile.REGTYPE, b"x"), "climbs out of the archive with '..'"),
        (("code/../../evil.sh", tarfile.REGTYPE, b"x"), "climbs out of the archive with '..'"),
        (
            ("vocab.txt", tarfile.SYMTYPE, "../../etc/passwd"),
            "is a symbolic link to '../../etc/passwd', outside the archive",
        ),
        (("vocab.txt", tarfile.SYMTYPE, "/etc/passwd"), "is a symbolic link to '/etc/passwd', outside the archive"),
        (("code/up", tarfile.SYMTYPE, "../.."), "is a symbolic link to '../..', outside the archive"),
        (("weights.bin", tarfile.LNKTYPE, "../outside"), "is a hard link to '../outside', outside the archive"),
        (("weights.bin", tarfile.LNKTYPE, "/etc/passwd"), "is a hard link to '/etc/passwd', outside the archive"),
        (("tty", tarfile.CHRTYPE, b""), "is a device, FIFO or other special file"),
        (("pipe", tarfile.FIFOTYPE, b""), "is a device, FIFO or other special file"),
    ],
)
def test_an_unsafe_member_is_refused_by_name_and_nothing_is_unpacked(tmp_path, entry, problem):
    archive = tar_of(tmp_path / "model.tar.gz", entry)
    dest = tmp_path / "out" / "model"
    with pytest.raises(ArtifactError) as caught:
        unpack(archive, dest)
    assert str(caught.value) == f"{archive}: member {entry[0]!r} {problem}; refusing to unpack it."
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert not (tmp_path / "evil.sh").exists()
    with pytest.raises(ArtifactError, match="refusing to unpack"):  # the same through every command's loader
        Classifier.load(archive)


def test_links_inside_and_a_root_entry_unpack(tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, kind, value in [(".", tarfile.DIRTYPE, b""), ("./config.json", tarfile.REGTYPE, b"{}")]:
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(value)
            tar.addfile(info, io.BytesIO(value))
        link = tarfile.TarInfo("./settings.json")
        link.type, link.linkname = tarfile.SYMTYPE, "config.json"
        tar.addfile(link)
    folder = unpack(archive, tmp_path / "model")
    assert (folder / "settings.json").read_text() == "{}" and (folder / "settings.json").is_symlink()


def test_a_chain_of_links_cannot_lead_out_even_without_tarfiles_data_filter(tmp_path, monkeypatch):
    """``a -> .`` then ``a/b -> ..`` each look inward, yet ``b/pwned`` would land beside the folder: Pythons
    before 3.10.12/3.11.4 have no ``data`` filter to stop it, so there a link is refused outright."""
    archive = tar_of(
        tmp_path / "model.tar.gz",
        ("a", tarfile.SYMTYPE, "."),
        ("a/b", tarfile.SYMTYPE, ".."),
        ("b/pwned", tarfile.REGTYPE, b"x"),
    )
    (tmp_path / "out").mkdir()
    for without_filter in (False, True):
        if without_filter:
            monkeypatch.delattr(tarfile, "data_filter")
        with pytest.raises(ArtifactError, match="refus|cannot unpack safely"):
            unpack(archive, tmp_path / "out" / "model")
        assert not (tmp_path / "out" / "pwned").exists() and list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nested", "its files are under 'reviews/', not at the archive's root as SageMaker expects"),
        ("no config", "not a model archive (no config.json at its root)"),
        ("not a tar", "neither a model folder nor a tar or tar.gz archive."),
        ("truncated", "a damaged archive ("),
    ],
)
def test_an_archive_that_is_not_a_model_is_a_one_line_error(bert_artifact, tmp_path, kind, message):
    archive = tmp_path / "model.tar.gz"
    if kind == "nested":
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(bert_artifact, arcname="reviews")
    elif kind == "no config":
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(bert_artifact / "textclf.json", arcname="textclf.json")
    elif kind == "not a tar":
        archive.write_text("model weights, honestly")
    else:
        package(bert_artifact, archive)
        archive.write_bytes(archive.read_bytes()[:5000])
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "--model-dir", str(archive), "good"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output
    assert not list((tmp_path / "cache" / "archives").glob("*/*"))


# -- the command --------------------------------------------------------------------------------


def test_textclf_package_prints_what_it_wrote_and_refuses_to_overwrite(bert_artifact, tmp_path):
    runner = CliRunner()
    output = tmp_path / "model.tar.gz"
    args = ["package", "--model-dir", str(bert_artifact), "--output", str(output), "--inference-code"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{output}: ") and "with code/inference.py" in result.output
    assert {i.name for i in members(output)} >= set(CODE_FILES)
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and again.output.strip() == (
        f"error: {output}: already exists; pass --overwrite to replace it, or choose another --output."
    )
    assert runner.invoke(main, [*args, "--overwrite"]).exit_code == 0
    missing = runner.invoke(main, ["package", "--model-dir", str(tmp_path / "nope"), "--output", str(output)])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "model folder not found" in missing.output


def test_an_archive_is_a_model_to_fine_tune_further(archives, models):
    from textclf.models import resolve_model

    source = resolve_model(str(archives["trained"]))
    assert (source.kind, Path(source.location)) == ("artifact", unpacked(archives["trained"]))
