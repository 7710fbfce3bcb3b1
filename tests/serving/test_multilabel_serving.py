"""`textclf serve` with a multi-label model: every answer shape, the pipeline's, thresholds, /info, the page data,
and single-label answers unchanged."""

from __future__ import annotations

import csv
import io
import json
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from serving_helpers import LiveServer, with_code

import textclf
from textclf.cli import main
from textclf.errors import ConfigError
from textclf.serving import ServeConfig, codecs, create_app

TEXTS = ["the food was great", "phone food", "good", "sad phone, ugly and broken", "the service was poor"]
VERBOSE_KEYS = {"probabilities", "labels", "predicted_labels"}


@pytest.fixture(scope="module")
def tagged(tagged_artifact):
    return textclf.Classifier.load(tagged_artifact, dtype="float32")


@pytest.fixture(scope="module")
def server(tagged_artifact):
    with LiveServer(create_app(ServeConfig(model_dir=str(tagged_artifact), max_batch_size=8, dtype="float32"))) as live:
        yield live


def post(server, body, content_type, accept=None):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    return httpx.post(server.url + "/invocations", content=body.encode(), headers=headers, timeout=30)


def expected(clf, texts) -> list[dict]:
    return [p.to_dict() for p in clf.predict(texts)]


def same(got: list[dict], want: list[dict]) -> None:
    assert [g["predicted_labels"] for g in got] == [w["predicted_labels"] for w in want]
    assert all(g["labels"] == ["food", "phone", "service"] for g in got)
    for g, w in zip(got, want):
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)


# -- every shape ---------------------------------------------------------------------------------


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_the_texts_cover_none_one_and_several_labels(tagged):
    """The cases below mean something only if the model predicts no label, one and several for these texts."""
    counts = {len(p.predicted_labels) for p in tagged.predict(TEXTS)}
    assert 0 in counts and 1 in counts and max(counts) >= 2


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
@pytest.mark.parametrize("single", [True, False])
def test_verbose_json_and_jsonlines_answer_probabilities_labels_and_predicted_labels(server, tagged, single):
    texts = TEXTS[:1] if single else TEXTS
    body = json.dumps(texts[0] if single else texts)
    verbose = post(server, body, "application/json", "application/json;verbose")
    assert verbose.status_code == 200, verbose.text
    records = [verbose.json()] if single else verbose.json()
    assert all(set(r) == VERBOSE_KEYS and list(r) == ["probabilities", "labels", "predicted_labels"] for r in records)
    same(records, expected(tagged, texts))
    lines = post(server, body, "application/json", "application/jsonlines")
    assert lines.status_code == 200 and lines.headers["content-type"].startswith("application/jsonlines")
    assert [json.loads(x) for x in lines.text.splitlines()] == records


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_plain_json_stays_jumpstart_probabilities_only(server, tagged):
    answer = post(server, json.dumps(TEXTS), "application/json", "application/json")
    assert answer.status_code == 200
    assert all(set(r) == {"probabilities"} for r in answer.json())
    assert np.allclose([r["probabilities"] for r in answer.json()], tagged.predict_proba(TEXTS), atol=1e-5)
    one = post(server, TEXTS[1], "text/plain")
    assert set(one.json()) == {"probabilities"} and len(one.json()["probabilities"]) == 3


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_csv_answers_the_predicted_labels_joined_by_commas_then_the_scores(server, tagged):
    answer = post(server, "\n".join(TEXTS), "text/csv", "text/csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    want = expected(tagged, TEXTS)
    assert [row[0] for row in rows] == [",".join(w["predicted_labels"]) for w in want]
    assert np.allclose([[float(x) for x in row[1:]] for row in rows], tagged.predict_proba(TEXTS), atol=1e-5)
    several = next(i for i, w in enumerate(want) if len(w["predicted_labels"]) >= 2)
    assert answer.text.splitlines()[several].startswith('"' + ",".join(want[several]["predicted_labels"]) + '",')
    none = next(i for i, w in enumerate(want) if not w["predicted_labels"])
    assert answer.text.splitlines()[none].startswith(",0.")  # an empty first field


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
@pytest.mark.parametrize(
    ("inputs", "parameters"),
    [(TEXTS[1], None), (TEXTS, None), (TEXTS[1], {"top_k": 2}), (TEXTS, {"top_k": 1}), (TEXTS, {"top_k": None})],
)
def test_inputs_requests_answer_exactly_like_a_transformers_pipeline(server, tagged_artifact, inputs, parameters):
    from transformers import pipeline

    body = {"inputs": inputs, **({"parameters": parameters} if parameters is not None else {})}
    response = post(server, json.dumps(body), "application/json", "application/json")
    assert response.status_code == 200, response.text
    want = pipeline("text-classification", model=str(tagged_artifact))(inputs, **(parameters or {}))

    def flat(value):
        return (
            [(d["label"], round(d["score"], 5)) for d in value]
            if isinstance(value, list) and value and isinstance(value[0], dict)
            else [flat(v) for v in value]
        )

    assert flat(response.json()) == flat(want)
    if parameters == {"top_k": None}:  # sigmoid scores: independent, not summing to 1
        assert not all(sum(d["score"] for d in row) == pytest.approx(1, abs=1e-3) for row in response.json())


# -- thresholds ----------------------------------------------------------------------------------


def verbose_of(live, texts=TEXTS) -> list[dict]:
    answer = post(live, json.dumps(texts), "application/json", "application/json;verbose")
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_threshold_and_at_least_one_override_the_trained_thresholds(tagged_artifact, tagged):
    config = {"model_dir": str(tagged_artifact), "dtype": "float32"}
    with LiveServer(create_app(ServeConfig(**config, threshold=1.0))) as live:
        answers = verbose_of(live)  # only a saturated score (exactly 1.0 in float32) reaches the threshold 1.0
        saturated = [[n for n, p in zip(r["labels"], r["probabilities"]) if p >= 1.0] for r in answers]
        assert [r["predicted_labels"] for r in answers] == saturated
        info = httpx.get(live.url + "/info").json()
        assert info["thresholds"] == {"food": 1.0, "phone": 1.0, "service": 1.0}
    with LiveServer(create_app(ServeConfig(**config, threshold=0.0))) as live:
        assert [r["predicted_labels"] for r in verbose_of(live)] == [["food", "phone", "service"]] * len(TEXTS)
        rows = list(csv.reader(io.StringIO(post(live, "\n".join(TEXTS), "text/csv", "text/csv").text)))
        assert [row[0] for row in rows] == ["food,phone,service"] * len(TEXTS)
    with LiveServer(create_app(ServeConfig(**config, threshold=1.0, at_least_one=True))) as live:
        top = [[r["labels"][int(np.argmax(r["probabilities"]))]] for r in verbose_of(live)]
        assert [r["predicted_labels"] for r in verbose_of(live)] == top
        assert httpx.get(live.url + "/info").json()["at_least_one"] is True


MODEL_FN = """
from textclf import Classifier

def model_fn(model_dir):
    return Classifier.load(model_dir, dtype="float32")
"""


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_a_custom_model_fn_classifier_takes_the_threshold_too(tagged_artifact, tmp_path):
    folder = with_code(tagged_artifact, tmp_path / "custom", MODEL_FN)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder), threshold=0.0))) as live:
        assert [r["predicted_labels"] for r in verbose_of(live, TEXTS[:2])] == [["food", "phone", "service"]] * 2


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_info_and_page_name_the_task_and_each_labels_threshold(server, tagged_artifact, bert_artifact):
    chosen = json.loads((tagged_artifact / "textclf.json").read_text())["thresholds"]["thresholds"]
    info = httpx.get(server.url + "/info").json()
    assert info["task"] == "multi-label" and info["labels"] == ["food", "phone", "service"]
    assert info["thresholds"] == pytest.approx(dict(zip(["food", "phone", "service"], chosen)), abs=1e-6)
    assert info["at_least_one"] is False
    page = httpx.get(server.url + "/").text
    assert '"task": "multi-label"' in page and '"thresholds": {"food": ' in page
    with LiveServer(create_app(ServeConfig(model_dir=str(bert_artifact), dtype="float32"))) as live:
        single = httpx.get(live.url + "/info").json()
        assert single["task"] == "single-label" and "thresholds" not in single and "at_least_one" not in single
        assert '"task": "single-label"' in httpx.get(live.url + "/").text


# -- errors --------------------------------------------------------------------------------------


def test_a_threshold_for_a_single_label_model_is_a_one_line_startup_error(bert_artifact):
    for flags in (["--threshold", "0.5"], ["--at-least-one"]):
        result = CliRunner().invoke(main, ["serve", "--model-dir", str(bert_artifact), *flags])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
        assert "--threshold and --at-least-one apply to multi-label models; this one is single-label" in lines[0]
    with LiveServer(create_app(ServeConfig(model_dir=str(bert_artifact), threshold=0.5)), wait_ready=False) as live:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the app loads the model in the background; /ping says why it failed
            ping = httpx.get(live.url + "/ping")
            if "failed to load" in ping.text:
                break
            time.sleep(0.05)
        assert ping.status_code == 503 and "apply to multi-label models" in ping.json()["Message"]


def test_a_threshold_out_of_range_is_refused(bert_artifact):
    with pytest.raises(ConfigError, match=r"threshold must be in \[0.0, 1.0\], but got threshold=1.5"):
        ServeConfig(model_dir=str(bert_artifact), threshold=1.5)
    result = CliRunner().invoke(main, ["serve", "--model-dir", str(bert_artifact), "--threshold", "-0.1"])
    assert result.exit_code == 2 and "threshold must be in [0.0, 1.0]" in result.output
    assert (
        ServeConfig.from_json(ServeConfig(model_dir="m", threshold=0.3, at_least_one=True).to_json()).threshold == 0.3
    )


# -- the codec, without a model ------------------------------------------------------------------

PROBS = np.array([[0.1234567, 0.8765433], [0.6, 0.4]], dtype=np.float32)


def test_single_label_bytes_are_unchanged():
    """The bytes every single-label answer had before multi-label models (written down from that code)."""
    many = codecs.Predictions(codecs.Request(["a", "b"]), PROBS, ["neg", "pos"])
    one = codecs.Predictions(codecs.Request(["a"], single=True), PROBS[:1], ["neg", "pos"])
    assert codecs.encode(many, codecs.VERBOSE) == (
        b'[{"probabilities": [0.123457, 0.876543], "labels": ["neg", "pos"], "predicted_label": "pos"}, '
        b'{"probabilities": [0.6, 0.4], "labels": ["neg", "pos"], "predicted_label": "neg"}]'
    )
    assert (
        codecs.encode(many, codecs.JSON) == b'[{"probabilities": [0.123457, 0.876543]}, {"probabilities": [0.6, 0.4]}]'
    )
    assert codecs.encode(many, codecs.CSV) == b"pos,0.123457,0.876543\nneg,0.6,0.4\n"
    assert codecs.encode(one, codecs.JSONLINES) == (
        b'{"probabilities": [0.123457, 0.876543], "labels": ["neg", "pos"], "predicted_label": "pos"}\n'
    )
    assert codecs.encode(one, codecs.JSON) == b'{"probabilities": [0.123457, 0.876543]}'
    top = codecs.Predictions(codecs.Request(["a", "b"], style="pipeline", parameters={"top_k": None}), PROBS, [0, 1])
    assert codecs.encode(top, codecs.JSON) == (
        b'[[{"label": "1", "score": 0.8765432834625244}, {"label": "0", "score": 0.12345670163631439}], '
        b'[{"label": "0", "score": 0.6000000238418579}, {"label": "1", "score": 0.4000000059604645}]]'
    )


def test_multi_label_codec_shapes_with_integer_labels():
    probs = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.3]], dtype=np.float32)
    decided = np.array([[True, True, False], [False, False, False]])
    p = codecs.Predictions(codecs.Request(["a", "b"]), probs, [0, 1, 2], decided)
    assert json.loads(codecs.encode(p, codecs.VERBOSE)) == [
        {"probabilities": [0.9, 0.8, 0.1], "labels": [0, 1, 2], "predicted_labels": [0, 1]},
        {"probabilities": [0.2, 0.1, 0.3], "labels": [0, 1, 2], "predicted_labels": []},
    ]
    assert codecs.encode(p, codecs.CSV) == b'"0,1",0.9,0.8,0.1\n,0.2,0.1,0.3\n'
    assert json.loads(codecs.encode(p, codecs.JSON)) == [
        {"probabilities": [0.9, 0.8, 0.1]},
        {"probabilities": [0.2, 0.1, 0.3]},
    ]
