"""The calibrated model in every path that outputs probabilities: each export, serve and batch."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest
from serving_helpers import LiveServer

import textclf
from textclf.batch import BatchOptions, run_batch
from textclf.metrics import softmax


@pytest.mark.slow
def test_every_export_serve_and_batch_give_the_calibrated_probabilities(
    bert_artifact, bert_uncalibrated, sentiment_files, tmp_path
):

    from textclf import export
    from textclf.serving import ServeConfig, create_app

    texts = textclf.data.read_examples(sentiment_files[1]).texts[:20]
    t = json.loads((bert_artifact / "textclf.json").read_text())["calibration"]["temperature"]
    expected = softmax(textclf.Classifier.load(bert_uncalibrated, backend="torch", dtype="float32").logits(texts) / t)
    folder = tmp_path / "exported"
    shutil.copytree(bert_artifact, folder)
    tolerance = {"torchscript": 1e-4, "onnx": 1e-4, "onnx-int8": 0.05}
    for fmt, atol in tolerance.items():
        export.export_model(folder, fmt, validation=sentiment_files[1])
        clf = textclf.Classifier.load(folder, backend=fmt)
        np.testing.assert_allclose(clf.predict_proba(texts), expected, atol=atol, err_msg=fmt)

    with LiveServer(create_app(ServeConfig(model_dir=str(bert_artifact), backend="torch", dtype="float32"))) as live:
        info = httpx.get(live.url + "/info")
        answer = httpx.post(live.url + "/invocations", content=texts[0], headers={"Content-Type": "application/x-text"})
    assert answer.status_code == 200
    assert info.json()["calibration"] == {"temperature": t}
    assert answer.json()["probabilities"] == pytest.approx(expected[0].tolist(), abs=1e-5)

    source = tmp_path / "texts.txt"
    source.write_text("".join(x + "\n" for x in texts))
    run_batch(
        bert_artifact, source, tmp_path / "scored", BatchOptions(backend="torch", dtype="float32"), log=lambda _: None
    )
    scored = [json.loads(x) for x in (tmp_path / "scored" / "texts.txt.out").read_text().splitlines()]
    np.testing.assert_allclose([r["probabilities"] for r in scored], expected, atol=1e-5)
