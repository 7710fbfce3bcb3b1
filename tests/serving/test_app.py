"""The endpoint over real HTTP: routes, content types, boto3, custom code, errors, batching."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import time

import httpx
import numpy as np
import pytest
from serving_helpers import LiveServer, with_code

import textclf
from textclf.errors import ConfigError
from textclf.export import export_model
from textclf.models import native_bf16_flag
from textclf.serving import ServeConfig, create_app

TEXTS = ["the food was great", "it was really very bad and the service was poor", "nice", "sad phone, ugly and broken"]

EXPLODING = """
from textclf import Classifier

def model_fn(model_dir):
    clf = Classifier.load(model_dir, dtype="float32")
    predict_proba = clf.predict_proba
    def guarded(texts):
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("the model blew up")
        return predict_proba(texts)
    clf.predict_proba = guarded
    return clf
"""


@pytest.fixture(scope="module")
def classifier(bert_artifact):
    return textclf.Classifier.load(bert_artifact, dtype="float32")


@pytest.fixture(scope="module")
def server(bert_artifact, tmp_path_factory):
    """The tiny model behind a live server; texts containing EXPLODE make the model raise."""
    folder = with_code(bert_artifact, tmp_path_factory.mktemp("exploding") / "model", EXPLODING)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder), max_batch_size=8, dtype="float32"))) as live:
        yield live


def post(server, body, content_type, accept=None, path="/invocations"):
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    return httpx.post(
        server.url + path, content=body if isinstance(body, bytes) else body.encode(), headers=headers, timeout=30
    )


# -- every content type with every accept ---------------------------------------------------

REQUESTS = {
    "x-text": ("application/x-text", TEXTS[0], TEXTS[:1], True),
    "text/plain": ("text/plain; charset=utf-8", TEXTS[1], TEXTS[1:2], True),
    "json string": ("application/json", json.dumps(TEXTS[2]), TEXTS[2:3], True),
    "json list": ("application/json", json.dumps(TEXTS), TEXTS, False),
    "csv lines": ("text/csv", "\n".join(f'"{t}"' if "," in t else t for t in TEXTS) + "\n", TEXTS, False),
    "csv header": ("text/csv", "id,inputs\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(TEXTS)), TEXTS, False),
    "jsonlines": ("application/jsonlines", "".join(json.dumps({"inputs": t}) + "\n" for t in TEXTS), TEXTS, False),
    "jsonlines text": ("application/jsonlines", json.dumps({"text": TEXTS[3]}), TEXTS[3:], False),
}


def rows_of(response, accept: str, single: bool) -> list[list[float]]:
    """Probability rows from any response shape."""
    if accept == "text/csv":
        return [[float(x) for x in row[1:]] for row in csv.reader(io.StringIO(response.text))]
    if accept == "application/jsonlines":
        return [json.loads(line)["probabilities"] for line in response.text.splitlines()]
    value = response.json()
    return [r["probabilities"] for r in ([value] if single else value)]


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/json;verbose", "text/csv", "application/jsonlines"]
)
@pytest.mark.parametrize("kind", list(REQUESTS))
def test_every_content_type_and_accept(server, classifier, kind, accept):
    content_type, body, texts, single = REQUESTS[kind]
    response = post(server, body, content_type, accept)
    assert response.status_code == 200, response.text
    answered = accept if accept not in (None, "*/*") else "application/json"
    assert response.headers["content-type"].startswith(answered.split(";")[0])
    expected = classifier.predict_proba(texts)
    assert np.allclose(rows_of(response, answered, single), expected, atol=1e-5)
    if answered == "application/json;verbose":
        records = [response.json()] if single else response.json()
        assert [r["predicted_label"] for r in records] == [classifier.labels.value(int(i)) for i in expected.argmax(1)]
        assert all(r["labels"] == ["negative", "positive"] for r in records)
    if answered == "application/json":
        assert all(set(r) == {"probabilities"} for r in ([response.json()] if single else response.json()))


@pytest.mark.parametrize(
    ("inputs", "parameters"),
    [(TEXTS[0], None), (TEXTS, None), (TEXTS[0], {"top_k": 2}), (TEXTS, {"top_k": 1}), (TEXTS, {"top_k": None})],
)
def test_inputs_requests_answer_exactly_like_a_transformers_pipeline(server, bert_artifact, inputs, parameters):
    from transformers import pipeline

    body = {"inputs": inputs, **({"parameters": parameters} if parameters is not None else {})}
    response = post(server, json.dumps(body), "application/json", "application/json")
    assert response.status_code == 200, response.text
    expected = pipeline("text-classification", model=str(bert_artifact))(inputs, **(parameters or {}))

    def flat(value):
        return (
            [(d["label"], round(d["score"], 5)) for d in value]
            if isinstance(value, list) and value and isinstance(value[0], dict)
            else [flat(v) for v in value]
        )

    assert flat(response.json()) == flat(expected)


# -- the SageMaker runtime path with boto3 ---------------------------------------------------


@pytest.fixture
def runtime(server, aws_credentials):
    import boto3

    return boto3.client("sagemaker-runtime", endpoint_url=server.url)


def test_boto3_invoke_endpoint_works_unchanged(runtime, classifier):
    response = runtime.invoke_endpoint(
        EndpointName="my-endpoint",
        ContentType="application/x-text",
        Accept="application/json;verbose",
        Body=TEXTS[0].encode(),
    )
    answer = json.loads(response["Body"].read())
    assert response["ContentType"] == "application/json;verbose"
    assert answer["predicted_label"] == classifier.predict(TEXTS[0])[0].predicted_label
    listed = runtime.invoke_endpoint(
        EndpointName="x", ContentType="application/json", Body=json.dumps({"inputs": TEXTS})
    )
    assert len(json.loads(listed["Body"].read())) == len(TEXTS)


def test_boto3_sees_client_errors_and_model_errors(runtime):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName="x", ContentType="application/json", Body=b'{"inputs": ')
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "malformed JSON" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName="x", ContentType="application/x-text", Body=b"please EXPLODE now")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        ("", "application/x-text", None, 400, "body is empty"),
        ('["fine", "  "]', "application/json", None, 400, "item 2 is empty"),
        ('{"inputs": [1', "application/json", None, 400, "malformed JSON"),
        ('id,inputs\n1,"open', "text/csv", None, 400, "malformed CSV"),
        ("hello", "application/xml", None, 415, "Content-Type application/xml is not supported"),
        ("hello", None, None, 415, "is not supported"),
        ("hello", "application/x-text", "text/html", 406, "Accept text/html is not supported"),
        ("x" * (6 * 1024 * 1024 + 1), "application/x-text", None, 413, "larger than the limit of 6 MB"),
    ],
)
def test_bad_requests_get_a_json_client_error(server, body, content_type, accept, status, message):
    response = post(server, body, content_type, accept)
    assert response.status_code == status
    assert message in response.json()["Message"]
    assert "Traceback" not in response.text


def test_a_chunked_body_over_the_limit_is_refused_while_reading(server):
    def chunks():
        for _ in range(7):
            yield b"y" * (1024 * 1024)

    response = httpx.post(
        server.url + "/invocations", content=chunks(), headers={"Content-Type": "application/x-text"}, timeout=30
    )
    assert response.status_code == 413


def test_a_model_failure_is_500_on_invocations_424_on_the_runtime_path_and_the_server_keeps_serving(server):
    plain = post(server, "EXPLODE", "application/x-text")
    assert plain.status_code == 500 and "the model blew up" in plain.json()["Message"]
    runtime = post(server, "EXPLODE", "application/x-text", path="/endpoints/any/invocations")
    assert runtime.status_code == 424 and runtime.headers["x-amzn-errortype"] == "ModelError"
    assert "the model blew up" in runtime.json()["Message"]
    assert post(server, TEXTS[0], "application/x-text").status_code == 200


def test_texts_longer_than_the_model_takes_are_truncated(server, classifier):
    long_text = "the food was great " + "really " * 5000  # 30 kB, far over max_seq_length
    response = post(server, long_text, "application/x-text", "application/json;verbose")
    assert response.status_code == 200
    assert response.json()["probabilities"] == pytest.approx(
        classifier.predict_proba([long_text])[0].tolist(), abs=1e-5
    )


def test_unknown_routes_and_methods_answer_json(server):
    missing = httpx.get(server.url + "/nope")
    assert missing.status_code == 404 and "Not Found" in missing.json()["Message"]
    assert httpx.get(server.url + "/invocations").status_code == 405


# -- batching under concurrency -------------------------------------------------------------


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, classifier):
    texts = [f"{TEXTS[i % 4]} {' '.join(['really'] * (i % 9))} number {i}" for i in range(96)]
    expected = classifier.predict_proba(texts)

    async def fire():
        async with httpx.AsyncClient(
            base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=32)
        ) as client:

            async def one_list(start):  # a request carrying 8 texts, split across batches
                r = await client.post(
                    "/invocations",
                    content=json.dumps(texts[start : start + 8]),
                    headers={"Content-Type": "application/json"},
                )
                return list(range(start, start + 8)), [x["probabilities"] for x in r.json()]

            async def one_text(i):
                r = await client.post("/invocations", content=texts[i], headers={"Content-Type": "application/x-text"})
                return [i], [r.json()["probabilities"]]

            lists = [one_list(start) for start in range(0, 96, 16)]
            singles = [one_text(i) for i in range(96) if (i // 8) % 2 == 1]
            return await asyncio.gather(*lists, *singles)

    before = _metric(server, "textclf_batch_size_count")
    answers = asyncio.run(fire())
    for indexes, rows in answers:
        assert np.allclose(rows, expected[indexes], atol=1e-5)
    assert sorted(i for indexes, _ in answers for i in indexes) == list(range(96))
    batches = _metric(server, "textclf_batch_size_count") - before
    assert batches < 48 + 1  # 96 texts in 54 requests shared forward passes (max batch 8: at least 12)


def _metric(server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_are_prometheus_text(server):
    post(server, "EXPLODE", "application/x-text")
    post(server, TEXTS[0], "application/x-text")
    text = httpx.get(server.url + "/metrics").text
    assert 'textclf_requests_total{route="/invocations",status="200"}' in text
    assert 'textclf_requests_total{route="/invocations",status="500"}' in text
    assert 'textclf_request_latency_seconds_bucket{le="0.5",route="/invocations"}' in text
    assert "textclf_batch_size_bucket" in text and "textclf_queue_depth" in text


def test_execution_parameters_and_ping(server):
    assert httpx.get(server.url + "/execution-parameters").json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    ping = httpx.get(server.url + "/ping")
    assert ping.status_code == 200 and ping.content == b""


def test_info_says_what_the_model_runs_on_and_why(bert_artifact, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder), max_batch_size=8))) as live:
        info = httpx.get(live.url + "/info").json()
    assert info["backend"] == "torch" and info["backend_reason"] == "auto: no export in the folder"
    assert info["labels"] == ["negative", "positive"] and info["max_batch_size"] == 8
    native = native_bf16_flag()
    if native == "amx_bf16":  # float32 for a lone short text, bfloat16 for large batches
        assert info["precision"] == "auto (bfloat16 from 256 tokens)" and native in info["precision_reason"]
    elif native:
        assert info["precision"] == "bfloat16" and native in info["precision_reason"]
    else:
        assert info["precision"] == "float32" and "no native bfloat16" in info["precision_reason"]
    assert info["cpu"]["bf16"] == native and info["cpu"]["cores"] >= 1
    export_model(folder, "onnx")
    with LiveServer(create_app(ServeConfig(model_dir=str(folder), dtype="float32"))) as live:
        info = httpx.get(live.url + "/info").json()
    assert (info["backend"], info["precision"]) == ("onnx", "float32")
    assert info["backend_reason"] == "auto: the fastest verified export present"


def test_the_page_names_the_model_and_its_labels(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '"labels": ["negative", "positive"]' in page.text and '"name": "model"' in page.text


# -- loading, custom code, zero-code deploy ---------------------------------------------------

SLOW_LOAD = """
import time
from textclf import Classifier

def model_fn(model_dir):
    time.sleep(1.5)
    return Classifier.load(model_dir, dtype="float32")
"""


def test_ping_is_503_until_the_model_has_loaded(bert_artifact, tmp_path):
    folder = with_code(bert_artifact, tmp_path / "slow", SLOW_LOAD)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder))), wait_ready=False) as live:
        early = httpx.get(live.url + "/ping")
        assert early.status_code == 503 and "still loading" in early.json()["Message"]
        assert (
            httpx.post(live.url + "/invocations", content=b"x", headers={"Content-Type": "text/plain"}).status_code
            == 503
        )
        from serving_helpers import wait_for_ping

        wait_for_ping(live.url)
        assert (
            httpx.post(live.url + "/invocations", content=b"nice", headers={"Content-Type": "text/plain"}).status_code
            == 200
        )


CUSTOM = """
import json

def input_fn(input_data, content_type, context):
    assert isinstance(input_data, str), type(input_data)
    return {"inputs": input_data.split("|"), "seen_by": context.request_headers.get("x-test", "")}

def predict_fn(data, model):
    probabilities = model.predict_proba(data["inputs"])
    return {"labels": [model.labels.value(int(i)) for i in probabilities.argmax(1)], "seen_by": data["seen_by"]}

def output_fn(prediction, accept):
    return json.dumps({"custom": prediction}), "application/vnd.custom+json"
"""


def test_custom_inference_code_replaces_the_default_steps(bert_artifact, tmp_path, classifier):
    folder = with_code(bert_artifact, tmp_path / "custom", CUSTOM)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder)))) as live:
        response = httpx.post(
            live.url + "/invocations",
            content=b"lovely food|awful phone",
            headers={"Content-Type": "text/plain", "Accept": "application/anything", "X-Test": "yes"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.custom+json"
    labels = [p.predicted_label for p in classifier.predict(["lovely food", "awful phone"])]
    assert response.json() == {"custom": {"labels": labels, "seen_by": "yes"}}


def test_a_broken_custom_file_fails_loading_with_one_line(bert_artifact, tmp_path):
    folder = with_code(bert_artifact, tmp_path / "broken", "def model_fn(model_dir):\n    return 42\n")
    failures = []
    with LiveServer(
        create_app(ServeConfig(model_dir=str(folder)), on_load_failure=failures.append), wait_ready=False
    ) as live:
        for _ in range(200):
            if failures:
                break
            time.sleep(0.05)
        ping = httpx.get(live.url + "/ping")
    assert failures and "model_fn returned a int" in failures[0] and "define predict_fn" in failures[0]
    assert ping.status_code == 503 and "failed to load" in ping.json()["Message"]


def test_zero_code_deploy_of_a_plain_hugging_face_folder(bert_artifact, tmp_path, classifier):
    import shutil

    plain = tmp_path / "plain-hf"
    shutil.copytree(bert_artifact, plain)
    for extra in ("textclf.json", "metrics.jsonl", "curves.png"):
        (plain / extra).unlink(missing_ok=True)
    config = ServeConfig.resolve(env={"HF_MODEL_ID": str(plain), "HF_TASK": "text-classification"}, dtype="float32")
    assert config.model == str(plain)
    with LiveServer(create_app(config)) as live:
        response = httpx.post(
            live.url + "/invocations",
            content=json.dumps({"inputs": TEXTS[0]}),
            headers={"Content-Type": "application/json"},
        )
    assert response.json()[0]["label"] == classifier.predict(TEXTS[0])[0].predicted_label


# -- settings --------------------------------------------------------------------------------


def test_settings_come_from_flags_then_the_sagemaker_environment(tmp_path):
    env = {"SM_MODEL_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": "9001"}
    assert ServeConfig.resolve(env=env) == ServeConfig(model_dir=str(tmp_path), port=9001)
    assert ServeConfig.resolve(env=env, port=7000, model_dir="x").port == 7000
    assert ServeConfig.resolve(env={**env, "HF_MODEL_ID": "org/model"}).model == "org/model"
    assert ServeConfig.resolve(env={}, model="m").host == "127.0.0.1"
    with pytest.raises(ConfigError, match="HF_TASK='summarization'"):
        ServeConfig.resolve(env={"HF_MODEL_ID": "m", "HF_TASK": "summarization"})
    with pytest.raises(ConfigError, match="SAGEMAKER_BIND_TO_PORT must be a port number"):
        ServeConfig.resolve(env={"SAGEMAKER_BIND_TO_PORT": "http"}, model="m")
    with pytest.raises(ConfigError, match="not both"):
        ServeConfig.resolve(env={}, model="m", model_dir="d")
    with pytest.raises(ConfigError, match="max_batch_size must be at least 1"):
        ServeConfig(model="m", max_batch_size=0)
    with pytest.raises(ConfigError, match="dtype must be one of"):
        ServeConfig(model="m", dtype="int4")
    with pytest.raises(ConfigError, match="backend must be one of"):
        ServeConfig(model="m", backend="tensorrt")
