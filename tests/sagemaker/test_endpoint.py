"""`textclf sagemaker serve`'s settings from the endpoint's environment, and the request timeout."""

from __future__ import annotations

import time

import httpx
import pytest

from serving.serving_helpers import LiveServer, with_code
from textclf.errors import ConfigError
from textclf.sagemaker import Layout, serve_config
from textclf.serving import ServeConfig, create_app


def test_the_endpoint_serves_model_on_8080_with_the_containers_workers_and_timeout(tmp_path):
    layout = Layout.resolve(tmp_path)
    config = serve_config(layout, {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "20"})
    assert (config.model_dir, config.host, config.port) == (str(tmp_path / "model"), "0.0.0.0", 8080)
    assert (config.workers, config.request_timeout_s) == (3, 20.0)
    assert serve_config(layout, {"SAGEMAKER_BIND_TO_PORT": "9090"}).port == 9090
    plain = serve_config(layout, {})
    assert (plain.workers, plain.request_timeout_s) == (1, None)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "many", "SAGEMAKER_MODEL_SERVER_WORKERS must be a number of processes"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "1m", "SAGEMAKER_MODEL_SERVER_TIMEOUT must be a number of seconds"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "0", "request_timeout_s must be more than 0"),
    ],
)
def test_a_bad_environment_value_is_one_line(tmp_path, variable, value, message):
    with pytest.raises(ConfigError, match=message):
        serve_config(Layout.resolve(tmp_path), {variable: value})


SLOW_PREDICT = """
import time

from textclf.serving.codecs import Predictions

def predict_fn(request, model):
    if "slow" in request.texts[0]:
        time.sleep(1.5)
    return Predictions(request, model.predict_proba(request.texts), model.labels.names)
"""


def test_a_prediction_over_the_timeout_is_504_and_424_on_the_runtime_path(bert_artifact, tmp_path):
    folder = with_code(bert_artifact, tmp_path / "slow", SLOW_PREDICT)
    with LiveServer(create_app(ServeConfig(model_dir=str(folder), request_timeout_s=0.5))) as live:
        late = httpx.post(live.url + "/invocations", content=b"slow", headers={"Content-Type": "text/plain"})
        assert late.status_code == 504
        assert "longer than the request timeout of 0.5 s" in late.json()["Message"]
        runtime = httpx.post(
            live.url + "/endpoints/x/invocations", content=b"slow", headers={"Content-Type": "text/plain"}
        )
        assert runtime.status_code == 424 and runtime.headers["x-amzn-ErrorType"] == "ModelError"
        time.sleep(4)  # the two late predictions (1.5 s each) hold the model's one thread until they end
        quick = httpx.post(live.url + "/invocations", content=b"nice", headers={"Content-Type": "text/plain"})
        assert quick.status_code == 200  # the server goes on serving


SLOW_MODEL = """
import os
import time

from textclf import Classifier

def model_fn(model_dir):
    model = Classifier.load(model_dir, dtype="float32")
    original = model.predict_proba

    def slow(texts):
        with open(os.path.join(model_dir, "calls.txt"), "a") as f:
            f.write("|".join(texts) + "\\n")
        time.sleep(0.6)
        return original(texts)

    model.predict_proba = slow
    return model
"""


def test_texts_of_a_timed_out_request_still_queued_never_reach_the_model(bert_artifact, tmp_path):
    import asyncio

    folder = with_code(bert_artifact, tmp_path / "slow-model", SLOW_MODEL)
    config = ServeConfig(model_dir=str(folder), request_timeout_s=0.3, max_batch_size=1, max_batch_delay_ms=0)
    with LiveServer(create_app(config)) as live:

        async def three():
            async with httpx.AsyncClient() as client:
                return await asyncio.gather(
                    *(
                        client.post(live.url + "/invocations", content=text, headers={"Content-Type": "text/plain"})
                        for text in (b"first", b"second", b"third")
                    )
                )

        answers = asyncio.run(three())
        assert [a.status_code for a in answers] == [504, 504, 504]
        time.sleep(1.5)  # whatever was on the model ends
    record = folder / "calls.txt"
    calls = record.read_text().split() if record.exists() else []
    assert len(calls) <= 1, calls  # at most the batch on the model when they timed out; the queued were dropped
