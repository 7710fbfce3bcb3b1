"""The public surface of every package and module, pinned: a name added to or dropped from an
``__all__`` is an interface change, so it must change here too (httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "textclf": [
        "ArtifactError",
        "Classifier",
        "ConfigError",
        "DataError",
        "EvaluationReport",
        "Hyperparameters",
        "ModelError",
        "MultiLabelPrediction",
        "Prediction",
        "ReadOptions",
        "RunOptions",
        "TextclfError",
        "TrainResult",
        "TuneResult",
        "__version__",
        "evaluate",
        "train",
        "tune",
    ],
    "textclf.artifact": [
        "METADATA_FILE",
        "METRICS_FILE",
        "ModelFolder",
        "TokenizerSettings",
        "check_output",
        "read_metadata",
        "staging",
        "staging_folders",
        "update_metadata",
        "versions",
    ],
    "textclf.backends": [
        "BF16_MIN_TOKENS",
        "Backend",
        "Choice",
        "InferencePrecision",
        "OnnxBackend",
        "TorchBackend",
        "TorchScriptBackend",
        "choose",
        "cores",
        "export_precision",
        "file_sha256",
        "fingerprint",
        "int8_weight_bits",
        "open_backend",
        "open_export",
        "threads_per_worker",
    ],
    "textclf.batch": [
        "BatchOptions",
        "BatchResult",
        "DEFAULT_CHUNK_SIZE",
        "EXIT_RECORD_ERRORS",
        "FORMATS",
        "OUTPUT_FORMATS",
        "parse_shard",
        "run_batch",
    ],
    "textclf.choices": ["AUTO_ORDER", "BACKENDS", "BACKEND_CHOICES", "DTYPES", "EXPORT_FILES", "EXPORT_FORMATS"],
    "textclf.config": ["ADDED_HYPERPARAMETERS", "AUTO_FIELDS", "Hyperparameters", "JUMPSTART_NAMES", "RunOptions"],
    "textclf.data": [
        "Examples",
        "LabelSet",
        "ReadOptions",
        "TrainingData",
        "iterative_split",
        "load_training_data",
        "read_examples",
        "read_label_names",
        "read_texts",
    ],
    "textclf.data.reader": [
        "FORMATS",
        "LABEL_COLUMNS",
        "Layout",
        "ReadOptions",
        "Record",
        "SUFFIXES",
        "TASKS",
        "TEXT_COLUMNS",
        "file_format",
        "read_records",
        "records",
        "resolve_layout",
    ],
    "textclf.errors": [
        "ArtifactError",
        "ConfigError",
        "DataError",
        "ModelError",
        "TextclfError",
        "TrainingInterrupted",
    ],
    "textclf.evaluation": ["EvaluationReport", "evaluate"],
    "textclf.export": [
        "ExportReport",
        "ExportSettings",
        "FORMATS",
        "QuantizationSettings",
        "Writer",
        "export_model",
        "write_export",
    ],
    "textclf.export_settings": [
        "ExportSettings",
        "FORMATS",
        "MAX_ACCURACY_DROP",
        "MAX_CHANGED",
        "QuantizationSettings",
        "WEIGHT_BITS",
    ],
    "textclf.inference": [
        "Classifier",
        "MultiLabelPrediction",
        "Prediction",
        "TextEncoder",
    ],
    "textclf.metrics": [
        "MIN_POSITIVES",
        "binary_cross_entropy",
        "choose_thresholds",
        "classification_metrics",
        "cross_entropy",
        "multilabel_metrics",
        "multilabel_metrics_from_counts",
        "sigmoid",
    ],
    "textclf.models": [
        "JUMPSTART_MODELS",
        "ModelSource",
        "PROBLEM_TYPES",
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
        "set_label_priors",
    ],
    "textclf.options": [
        "STYLES",
        "click_options",
        "flag_name",
        "setting",
        "settings_fields",
        "value_types",
        "values_of",
    ],
    "textclf.progress": ["ProgressBar", "log_stderr"],
    "textclf.reference": ["REGENERATE", "hyperparameters_markdown"],
    "textclf.serving": ["ServeConfig", "create_app", "serve"],
    "textclf.serving.errors": [
        "BodyTooLarge",
        "ModelFailure",
        "NotReady",
        "RequestError",
        "UnsupportedAccept",
        "UnsupportedContentType",
    ],
    "textclf.training": ["Run", "TrainResult", "TrainingHooks", "train"],
    "textclf.tuning": ["DEFAULT_SPACE", "Param", "SearchSpace", "TuneConfig", "TuneResult", "TuneSettings", "tune"],
    "textclf.validation": ["at_least", "at_most", "between", "check_fields", "finite", "one_of", "positive"],
    "textclf.sifting": ["RelativeProbabilisticSifter", "SiftingConfig", "SiftingDataLoader", "SiftingStats"],
    "textclf.training.batches": [
        "EpochBatches",
        "SIFTING_CANDIDATES",
        "SIFTING_SCORING_BATCHES",
        "TrainingBatches",
        "make_batches",
    ],
    "textclf.training.epoch": [
        "Batches",
        "EpochPass",
        "MAX_GRAD_NORM",
        "logits_of",
        "optimizer_step",
        "per_sample_loss",
        "train_epoch",
    ],
    "textclf.training.auto": [
        "DataShape",
        "HEAD_SCALE",
        "MAX_CHECKS",
        "MAX_EPOCHS",
        "MULTI_LABEL_BUDGET_SCALE",
        "ModelShape",
        "SAMPLE_BUDGET",
        "STEPS_PER_CHECK",
        "TOKEN_BUDGET",
        "choose",
        "describe",
        "plan",
        "recorded",
    ],
    "textclf.training.run": ["Run", "TrainingHooks", "enable_gradient_checkpointing", "read_data", "setup"],
    "textclf.training.schedule": ["LinearSchedule"],
    "textclf.training.sifting": [
        "RelativeProbabilisticSifter",
        "SiftingConfig",
        "SiftingDataLoader",
        "SiftingStats",
        "sifted_learning_rate",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned_and_every_name_exists(module):
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == PUBLIC[module]
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_every_package_is_pinned():
    from pathlib import Path

    import textclf

    root = Path(textclf.__file__).parent
    packages = {"textclf." + ".".join(p.parent.relative_to(root).parts) for p in root.rglob("__init__.py")}
    packages = {name.rstrip(".") for name in packages}
    assert packages <= set(PUBLIC), f"packages without a pinned __all__: {sorted(packages - set(PUBLIC))}"
