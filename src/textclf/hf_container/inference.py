"""A textclf model in SageMaker's Hugging Face inference container, with no textclf installed.

``textclf package --inference-code`` writes this file into the archive's ``code/``, beside
``textclf_codecs.py`` (a copy of textclf's ``serving/codecs.py``: the request and response formats).
The container's handler (sagemaker-huggingface-inference-toolkit's ``HuggingFaceHandlerService``)
imports it, loads the model with ``model_fn(model_dir)`` and answers each request with

    input_fn(input_data, content_type) -> predict_fn(data, model) -> output_fn(prediction, accept)

so the endpoint speaks what ``textclf serve`` speaks: JumpStart's ``application/x-text`` in and
``application/json;verbose`` out, ``{"inputs": ...}`` answered as ``transformers.pipeline`` answers it,
text/csv and JSON Lines (``textclf_codecs``' docstring has the table). A request it cannot use is
answered 400 with textclf's one-line message.

The probabilities are those of ``textclf.Classifier``: each text truncated at the ``max_seq_length``
the model was trained with (``textclf.json``), then a softmax; a multi-label model
(``problem_type`` ``multi_label_classification``) takes a sigmoid a label and predicts the labels at
or above the thresholds training chose (``textclf.json``; 0.5 without). Calibration needs nothing
here: training folded its temperature into the output layer. Only torch, transformers and numpy
are imported, which the container has.
"""

from __future__ import annotations

import json
import os

import numpy as np
import textclf_codecs as codecs
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerFast

BATCH_SIZE = 32
"""Texts a forward pass: a request's texts are sorted by length and cut into batches of this many."""


class TextClassifier:
    """The model folder's network, tokenizer, labels and decision rule."""

    def __init__(self, model_dir: str):
        metadata = {}
        path = os.path.join(model_dir, "textclf.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                metadata = json.load(f)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        self.model = model.float().eval().to(self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        except ValueError:  # a class name an older transformers does not know (TokenizersBackend): the
            self.tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)  # tokenizer.json is the same
        if self.tokenizer.pad_token is None:  # as textclf pads a decoder's batches: with its EOS token
            self.tokenizer.pad_token = self.tokenizer.eos_token
        config = self.model.config
        names = [config.id2label[i] for i in range(config.num_labels)]
        self.labels = list(range(len(names))) if metadata.get("label_type") == "int" else names
        self.multi_label = config.problem_type == "multi_label_classification"
        self.max_length = int(metadata.get("max_seq_length") or _max_length(config, self.tokenizer))
        self.decoder = _is_decoder(config)
        self.pad_left = self.decoder and self.tokenizer.padding_side == "left"
        chosen = (metadata.get("thresholds") or {}).get("thresholds")
        self.thresholds = np.asarray(chosen if chosen is not None else [0.5] * len(names), dtype=np.float64)
        if len(self.thresholds) != len(names):
            raise ValueError(f"textclf.json has {len(self.thresholds)} thresholds for {len(names)} labels.")

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """One row a text, a column a label (label-id order): softmax, or a sigmoid a label for multi-label."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        logits = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            logits[rows] = self._forward([ids[r] for r in rows])
        if self.multi_label:
            return (0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))).astype(np.float32)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """A multi-label model's predictions: a True for each score at or above its label's threshold."""
        return probabilities.astype(np.float64) >= self.thresholds

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            where = slice(width - len(s), width) if self.pad_left else slice(0, len(s))
            input_ids[i, where] = torch.tensor(s, dtype=torch.long)
            mask[i, where] = 1
        kwargs = {}
        if self.decoder:  # positions that ignore (left) padding, as textclf computes them
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        return out.logits.float().cpu().numpy()


def _max_length(config, tokenizer) -> int:
    """The longest input the model takes, for a folder textclf did not train: 512 at most."""
    limits = [512, getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)]
    if tokenizer.model_max_length < 100_000:  # transformers' "no limit" is a huge number
        limits.append(tokenizer.model_max_length)
    return min(x for x in limits if x)


def _is_decoder(config) -> bool:
    """Decoder-only (GPT-style) models pool their last token, so their position ids must skip padding."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


# -- the four functions the container calls ------------------------------------------------


def model_fn(model_dir):
    return TextClassifier(model_dir)


def input_fn(input_data, content_type):
    return codecs.decode(input_data, content_type)


def predict_fn(data, model):
    request = codecs.to_request(data)
    probabilities = model.probabilities(request.texts)
    predicted = model.decide(probabilities) if model.multi_label else None
    return codecs.Predictions(request, probabilities, model.labels, predicted)


def output_fn(prediction, accept):
    return codecs.encode(prediction, codecs.negotiate(accept))
