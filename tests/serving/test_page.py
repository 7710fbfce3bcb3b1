"""The web page in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import shutil

import pytest
from serving_helpers import LiveServer

import textclf
from conftest import CHROMIUM, FLAGS
from textclf.serving import ServeConfig, create_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not shutil.which("chromium"), reason="Debian's chromium is not installed (`make test` installs it)"
    ),
]


def test_type_click_and_read_the_prediction(bert_artifact, tmp_path):
    from playwright.sync_api import sync_playwright

    expected = textclf.Classifier.load(bert_artifact, dtype="float32").predict("the food was excellent and lovely")[0]
    with (
        LiveServer(create_app(ServeConfig(model_dir=str(bert_artifact), dtype="float32"))) as live,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(live.url + "/")
            assert page.text_content("#model-name") == "bert"
            assert page.text_content("#model-labels") == "Labels: negative, positive"
            page.fill("#text", "the food was excellent and lovely")
            page.click("#classify")
            page.wait_for_selector("#result:not([hidden])", timeout=15_000)
            assert page.text_content("#predicted") == expected.predicted_label
            bars = page.query_selector_all("#bars .row")
            assert [b.get_attribute("data-label") for b in bars] == ["negative", "positive"]
            shown = [float(b.query_selector(".score").text_content().rstrip("%")) for b in bars]
            assert shown == pytest.approx([100 * p for p in expected.probabilities], abs=0.06)
            page.screenshot(path=str(tmp_path / "page.png"))

            page.fill("#text", "   ")
            page.click("#classify")
            assert page.text_content("#error") == "Type a text first."
        finally:
            browser.close()


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_a_multi_label_model_marks_every_predicted_label_or_says_none_is(tagged_artifact, tmp_path):
    from playwright.sync_api import sync_playwright

    clf = textclf.Classifier.load(tagged_artifact, dtype="float32")
    candidates = ["phone food", "sad phone, ugly and broken", "food phone service", "good", "nice", "the movie"]
    predictions = dict(zip(candidates, clf.predict(candidates)))
    several = next(t for t, p in predictions.items() if len(p.predicted_labels) >= 2)
    none = next(t for t, p in predictions.items() if not p.predicted_labels)
    with (
        LiveServer(create_app(ServeConfig(model_dir=str(tagged_artifact), dtype="float32"))) as live,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(live.url + "/")
            assert page.text_content("#model-labels").startswith("Labels: food, phone, service (multi-label")
            page.fill("#text", several)
            page.click("#classify")
            page.wait_for_selector("#result:not([hidden])", timeout=15_000)
            expected = predictions[several]
            assert page.text_content("#predicted-title") == "Predicted labels:"
            assert page.text_content("#predicted") == ", ".join(expected.predicted_labels)
            assert page.is_hidden("#note")
            bars = page.query_selector_all("#bars .row")
            assert [b.get_attribute("data-label") for b in bars] == ["food", "phone", "service"]
            marked = [b.get_attribute("data-label") for b in page.query_selector_all("#bars .row.best")]
            assert marked == expected.predicted_labels and len(marked) >= 2
            shown = [float(b.query_selector(".score").text_content().rstrip("%")) for b in bars]
            assert shown == pytest.approx([100 * p for p in expected.probabilities], abs=0.06)
            ticks = [b.query_selector(".tick").get_attribute("title") for b in bars]
            assert ticks == [f"threshold {100 * t:.1f}%" for t in clf.thresholds]
            page.screenshot(path=str(tmp_path / "several.png"))

            page.fill("#text", none)
            page.click("#classify")
            page.wait_for_function("document.querySelectorAll('#bars .row.best').length === 0", timeout=15_000)
            assert page.text_content("#predicted") == "none"
            assert page.is_visible("#note") and page.text_content("#note") == "(no label above its threshold)"
        finally:
            browser.close()
