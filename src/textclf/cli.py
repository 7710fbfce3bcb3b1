"""Command line: parse arguments, call the library, map errors to exit codes.

Each command's settings are a dataclass (Hyperparameters, RunOptions, TuneSettings,
BatchOptions, ServeConfig, ExportSettings, ReadOptions); their flags are made from its fields
by :func:`textclf.options.click_options`, and :func:`textclf.options.values_of` takes the values
back, so a setting is declared and documented only where its dataclass declares it.

Exit codes: 0 success, 2 a problem with the input (usage, data, model, config),
1 anything unexpected (``--debug`` shows its traceback), 3 ``batch`` finished but some records
went to ``.errors``, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .batch import BatchOptions
from .config import Hyperparameters, RunOptions
from .data import ReadOptions
from .errors import TextclfError
from .export_settings import ExportSettings
from .label_errors import DEFAULT_FOLDS, DEFAULT_METHOD, METHODS
from .options import click_options, values_of
from .progress import log_stderr
from .serving.config import ServeConfig
from .tuning import TuneSettings

__all__ = ["main"]


def _fail(message: str, code: int) -> None:
    if message:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _reports() -> bool:
    """False in the training processes torchrun started, but rank 0: the same error once, not once per process.

    (:func:`textclf.training.distributed.launched`'s test, without importing torch.)"""
    return "LOCAL_WORLD_SIZE" not in os.environ or os.environ.get("RANK", "0") == "0"


class _Group(click.Group):
    """Turns every TextclfError into one line on stderr and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["argv"] = list(args)  # `train --nproc N` runs the same command in N processes
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TextclfError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _fail(str(exc) if _reports() else "", 2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or TrainingInterrupted with how to resume
            _fail((str(exc) or "interrupted") if _reports() else "", 130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except BrokenPipeError:  # `textclf ... | head`: the reader is gone; stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            sys.exit(141)  # 128 + SIGPIPE
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = "" if _reports() else f"rank {os.environ['RANK']}: "  # an error of one process, perhaps the cause
            _fail(f"{where}unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="textclf")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Fine-tune, evaluate and run transformer text classifiers, offline."""
    ctx.obj = {"debug": debug}


# -- shared options -----------------------------------------------------------

_read_options = click_options(ReadOptions)  # train, tune, evaluate, export; batch has BatchOptions' flags
_run_options = click_options(RunOptions, style="layered")  # not given: RunOptions' default
_hyperparameter_options = click_options(Hyperparameters, style="text")  # converted as a hyperparameters.json is
_model_options = click_options(  # evaluate's and predict's
    BatchOptions, only=("batch_size", "backend", "dtype", "threshold", "at_least_one")
)


def _model_and_validation(command):
    """``--model`` and ``--validation``, as train and tune take them."""
    command = click.option(
        "--validation", default=None, help="Validation data (same formats); else a stratified split of --data."
    )(command)
    return click.option(
        "--model",
        default=None,
        help="'default' (embedded MiniLM), a model folder, a textclf output folder, or a Hub id.",
    )(command)


def _make_read_options(kw: dict) -> ReadOptions:
    return ReadOptions(**values_of(ReadOptions, kw))


def _make_run_options(kw: dict) -> RunOptions:
    return RunOptions(**values_of(RunOptions, kw))


def _make_hyperparameters(hp_file: Path | None, kw: dict) -> Hyperparameters:
    """``--hyperparameters FILE`` (or the defaults) with the hyperparameter flags given applied over it."""
    hp = Hyperparameters.from_file(hp_file) if hp_file else Hyperparameters()
    return hp.updated(values_of(Hyperparameters, kw), source="command line")


# -- commands -----------------------------------------------------------------


@main.command()
@click.option(
    "--data", required=True, help="Training data: a .csv/.tsv/.jsonl/.label file, or a directory holding data.csv."
)
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Model folder to create.")
@_model_and_validation
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="hyperparameters.json (values may be strings); flags override it.",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it already holds a textclf model.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: only on a terminal).")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    help="Train in N processes on this machine (DistributedDataParallel, "
    "as `torchrun --nproc-per-node N -m textclf train ...`); each step takes batch_size x "
    "gradient_accumulation_steps x N samples. [default: 1]",
)
@_run_options
@_read_options
@_hyperparameter_options
@click.pass_context
def train(ctx, data, output, model, validation, hp_file, overwrite, progress, nproc, **kw) -> None:
    """Fine-tune a model on labelled texts and save a model folder.

    Checkpoints are written every --checkpoint-every-steps and at the end of each epoch; after a
    crash, Ctrl-C or SIGTERM (which write one first), run the same command again to resume.
    """
    from .training import train as run_training
    from .training.distributed import launch, launched

    run_options = _make_run_options(kw)
    read_options = _make_read_options(kw)
    hp = _make_hyperparameters(hp_file, kw)
    if nproc and launched() and str(nproc) != os.environ["LOCAL_WORLD_SIZE"]:
        raise click.UsageError(
            f"--nproc {nproc} inside a launch of {os.environ['LOCAL_WORLD_SIZE']} processes per machine; "
            "leave out --nproc under torchrun."
        )
    if nproc and nproc > 1 and not launched():
        sys.exit(launch(nproc, ctx.meta["argv"]))
    result = run_training(
        data,
        output,
        model=model,
        validation=validation,
        hyperparameters=hp,
        read_options=read_options,
        overwrite=overwrite,
        options=run_options,
        progress=progress,
    )
    if not _reports():
        return
    best = result.best
    first, second = ("val_micro_f1", "val_macro_f1") if "val_micro_f1" in best else ("val_accuracy", "val_f1")
    if best.get(first) is not None:
        where = f"epoch {result.best_epoch}" + (f" step {best['step']}" if "step" in best else "")  # a mid-epoch check
        click.echo(
            f"best {where}: {first} {best[first]:.4f}  {second} {best[second]:.4f}  "
            f"(training {result.training_seconds:.1f}s)"
        )


@main.command()
@click.option("--data", required=True, help="Training data, in any format `train` accepts.")
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Study folder: trials/NNNN, best/, study.csv, plots, study.db.",
)
@click.option(
    "--search-space",
    type=click.Path(path_type=Path),
    help="JSON or YAML: name -> {type: float|int|categorical, low, high, log, step | choices} "
    "[default: learning_rate, batch_size, epochs, less fixed ones].",
)
@click_options(TuneSettings)
@_model_and_validation
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="hyperparameters.json of fixed values; flags override it.",
)
@_read_options
@_hyperparameter_options
def tune(data, output, search_space, hp_file, model, validation, **kw) -> None:
    """Search hyperparameters with Optuna; keep the best trial's model folder in OUTPUT/best.

    Run the same command again to resume the study (finished trials are kept, an interrupted
    one is retried). Fixed hyperparameters are given as for `train` (--epochs 2 ...).
    """
    from .tuning import tune as run_tuning

    read_options = _make_read_options(kw)
    settings = TuneSettings(**values_of(TuneSettings, kw))
    result = run_tuning(
        data,
        output,
        search_space=search_space,
        settings=settings,
        model=model,
        validation=validation,
        hyperparameters=_make_hyperparameters(hp_file, kw),
        read_options=read_options,
    )
    click.echo(result.render())


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.option("--data", required=True, help="Labelled data, in any format `train` accepts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@_model_options
@_read_options
def evaluate(model_dir, data, as_json, batch_size, backend, dtype, threshold, at_least_one, **kw) -> None:
    """Accuracy, macro F1, MCC, per-class scores and confusion matrix (multi-label: micro and macro F1, subset
    accuracy, Hamming loss, per-label scores and thresholds)."""
    from .evaluation import evaluate as run_evaluation
    from .inference import Classifier

    clf = Classifier.load(model_dir, backend, batch_size, dtype, threshold=threshold, at_least_one=at_least_one)
    log_stderr(clf.summary())
    report = run_evaluation(clf, data, _make_read_options(kw))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.option(
    "--data",
    default=None,
    help="Labelled data to run the model on (any format `train` accepts): per-class scores, confusion matrix, "
    "calibration and mistakes on it. [default: none]",
)
@click.option(
    "--label-errors",
    type=click.Path(path_type=Path),
    default=None,
    help="errors.csv written by `textclf find-label-errors`: its rows are shown. [default: none]",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write. [default: MODEL_DIR/report.html]",
)
@_model_options
@_read_options
def report(model_dir, data, label_errors, output, batch_size, backend, dtype, threshold, at_least_one, **kw) -> None:
    """Write one self-contained HTML report on a model (and on --data): data summary and duplicates, training
    curves, per-class scores, confusion matrix, calibration, mistakes, label errors, settings."""
    from .artifact import REPORT_FILE
    from .errors import ArtifactError
    from .report import report_for, write_report

    if output is None and Path(model_dir).is_file():
        raise ArtifactError(f"{model_dir}: an archive; pass --output FILE (the default is MODEL_DIR/report.html).")
    load = dict(backend=backend, batch_size=batch_size, dtype=dtype, threshold=threshold, at_least_one=at_least_one)
    inputs = report_for(model_dir, data, label_errors, _make_read_options(kw), load_options=load)
    click.echo(write_report(output or Path(model_dir) / REPORT_FILE, inputs))


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=Path),
    help="File of texts, read as batch reads it: one per line (.txt), or the text column or key of a .csv/.tsv/.jsonl.",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --input.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='One {"probabilities", "labels", "predicted_label"} JSON line per text ("predicted_labels" for multi-label).',
)
@_model_options
def predict(model_dir, texts, input_file, encoding, as_json, batch_size, backend, dtype, threshold, at_least_one):
    """Classify TEXTS (or the texts of --input)."""
    from .data import read_texts
    from .inference import Classifier, MultiLabelPrediction

    if input_file is not None and texts:
        raise click.UsageError("give texts as arguments or --input FILE, not both.")
    texts = read_texts(input_file, encoding) if input_file is not None else list(texts)
    if not texts:
        raise click.UsageError("nothing to classify: pass texts as arguments or --input FILE.")
    clf = Classifier.load(model_dir, backend, batch_size, dtype, threshold=threshold, at_least_one=at_least_one)
    log_stderr(clf.summary())
    for text, pred in zip(texts, clf.predict(texts)):
        if as_json:
            click.echo(json.dumps(pred.to_dict()))
            continue
        probs = "  ".join(f"{label}={p:.3f}" for label, p in zip(pred.labels, pred.probabilities))
        shown = text if len(text) <= 70 else text[:67] + "..."
        if isinstance(pred, MultiLabelPrediction):
            predicted = ",".join(str(label) for label in pred.predicted_labels) or "(none)"
        else:
            predicted = pred.predicted_label
        click.echo(f"{predicted}\t{probs}\t{shown}")


@main.command()
@click_options(ServeConfig, style="layered")  # not given: the environment's value, else the default
def serve(**kw) -> None:
    """Serve a model over HTTP (SageMaker-compatible /invocations, web page at /)."""
    from .serving import serve as run_server

    run_server(ServeConfig.resolve(**values_of(ServeConfig, kw)))


@main.group()
def sagemaker() -> None:
    """SageMaker's container contract: the image's `train` and `serve` (ENTRYPOINT textclf sagemaker)."""


_base_dir = click.option(
    "--base-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The SageMaker folder tree [default: $SAGEMAKER_BASE_DIR, else /opt/ml].",
)


@sagemaker.command("train")
@_base_dir
@click.pass_context
def sagemaker_train(ctx, base_dir) -> None:
    """Run a training job: hyperparameters.json and the channels in, model/ out (failure: output/failure)."""
    from .sagemaker import Layout, train_job

    sys.exit(train_job(Layout.resolve(base_dir), ctx.find_root().meta["argv"]))


@sagemaker.command("serve")
@_base_dir
def sagemaker_serve(base_dir) -> None:
    """Serve model/ on port 8080, as a SageMaker endpoint runs the image."""
    from .sagemaker import Layout, serve_config
    from .serving import serve as run_server

    run_server(serve_config(Layout.resolve(base_dir)))


@main.command("export")
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder written by `textclf train` (the export is written into it).",
)
@click_options(ExportSettings)
@_read_options
def export_command(model_dir, **kw) -> None:
    """Write a verified TorchScript, ONNX or int8 ONNX export into the model folder."""
    from .export import export_model

    settings = ExportSettings(**values_of(ExportSettings, kw))
    report = export_model(
        model_dir,
        settings.format,
        settings.validation,
        _make_read_options(kw),
        force=settings.force,
        max_changed=settings.max_changed,
        max_accuracy_drop=settings.max_accuracy_drop,
        quantization=settings.quantization,
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(report.render())


@main.command()
@click.option(
    "--model", default=None, help="A model (as for train); a textclf folder shows the values it was trained with."
)
@click.option("--data", default=None, help="Training data: show the values `train` would choose for it (auto).")
@click.option("--validation", default=None, help="Validation data, as for train (with --data).")
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    default=None,
    help="hyperparameters.json of fixed values; flags override it.",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Training processes, as for train (with --data): each step takes batch_size x N samples.",
)
@_hyperparameter_options
@_read_options
@click.option("--explain", is_flag=True, help="A table with each hyperparameter's meaning instead of JSON.")
def hyperparameters(model, data, validation, hp_file, nproc, explain, **kw) -> None:
    """Print the training hyperparameters as JSON: the defaults, or what a run would use.

    Unset values are "auto": with --data (and --model), the values `train` would choose for
    that model and data, each with its reason on stderr. A textclf model folder without --data
    shows the values it was trained with. Flags and --hyperparameters fix values, as for train.
    """
    from .models import resolve_model
    from .training import auto

    hp, reasons = _make_hyperparameters(hp_file, kw), {}
    read_options = _make_read_options(kw)
    source = resolve_model(model)
    if data is not None:
        hp, reasons = auto.plan(
            data, model=model, validation=validation, hyperparameters=hp, read_options=read_options, processes=nproc
        )
    else:  # what only a run on some data uses would be ignored: refuse it
        ignored = [
            what
            for what, given in (
                ("--validation", validation is not None),
                ("--nproc", nproc != 1),
                ("a read option", read_options != ReadOptions()),
                ("a hyperparameter flag or --hyperparameters", source.kind == "artifact" and hp != Hyperparameters()),
            )
            if given
        ]
        if ignored:
            raise click.UsageError(f"{ignored[0]} applies to the values a run on some data chooses: pass --data too.")
        if source.kind == "artifact":
            hp, reasons = auto.recorded(source.location)
    values = {k: "auto" if v is None else v for k, v in hp.to_dict().items()}
    for name, reason in reasons.items():
        click.echo(f"{name} {values[name]:g} (auto: {reason})", err=True)
    if not explain:
        click.echo(json.dumps(values, indent=2))
        return
    for name, type_name, _, help_text in Hyperparameters.describe():
        value = f"{values[name]:g}" if isinstance(values[name], float) else str(values[name])
        click.echo(f"{name:<30} {type_name:<6} {value + (' *' if name in reasons else ''):<10} {help_text}")


@main.command()
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder to pack (written by `textclf train`, or any Hugging Face model folder).",
)
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Archive to write: model.tar.gz.")
@click.option(
    "--inference-code",
    is_flag=True,
    help="Add code/inference.py, which makes SageMaker's Hugging Face container answer as `textclf serve` does.",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
def package(model_dir, output, inference_code, overwrite) -> None:
    """Pack a model folder into a model.tar.gz for SageMaker: its files at the archive's root, the same bytes
    every time. Every textclf command takes the archive where it takes a model folder."""
    from .packaging import package as pack

    click.echo(pack(model_dir, output, inference_code=inference_code, overwrite=overwrite).render())


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.option(
    "--input",
    "input_path",
    required=True,
    help="A file, a folder (every file below it) or a quoted glob such as 'data/*.jsonl'.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for <name>.out and <name>.errors per input file (new, empty, or this job's own to resume).",
)
@click_options(BatchOptions)
@click.option("--json", "as_json", is_flag=True, help="With --evaluate: print the report as one JSON object.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar with rate and ETA (default: only on a terminal)."
)
def batch(model_dir, input_path, output, as_json, progress, **kw) -> None:
    """Score large files offline: one <name>.out per input file, in input order.

    Kill it at any moment and run the same command again: it resumes, and the outputs are
    byte for byte those of an uninterrupted run. Records that cannot be read go to
    <name>.errors with their line number and reason, and the job goes on.

    Exit codes: 0 done; 3 done, but some records went to .errors; 2 bad usage or input
    (nothing written that is not this job's); 1 unexpected; 130 interrupted (rerun to resume).
    """
    from .batch import run_batch

    options = BatchOptions(**values_of(BatchOptions, kw))
    result = run_batch(model_dir, input_path, output, options, progress=progress)
    errors = (
        f"; {result.errors:,} records could not be read, see {', '.join(result.error_files[:3])}"
        if result.errors
        else ""
    )
    click.echo(
        f"{output}: {result.records - result.errors:,} records scored in {result.files} file(s){errors}.", err=True
    )
    if result.evaluation is not None:
        click.echo(json.dumps(result.evaluation.to_dict(), indent=2) if as_json else result.evaluation.render())
    sys.exit(result.exit_code)


@main.command("find-label-errors")
@click.option("--data", required=True, help="Labelled data, in any format `train` accepts (single-label).")
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV to write: every row, most likely mislabelled first.",
)
@click.option("--model", default=None, help="The model each run fine-tunes, as for train [default: default].")
@click.option(
    "--folds",
    type=int,
    default=DEFAULT_FOLDS,
    show_default=True,
    help="Cross-fitting folds: K trainings, each scoring the fold it did not see.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=DEFAULT_METHOD,
    show_default=True,
    help="combined: the given label's out-of-sample probability averaged with the fold runs' training "
    "dynamics; cross-fit: the out-of-sample probability alone; dynamics: one training run on every row, its "
    "training dynamics alone.",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder keeping each finished fold's scores, so a rerun resumes [default: OUTPUT.folds].",
)
@click.option("--keep-models", is_flag=True, help="Keep each fold's model folder in --work-dir.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="Rows shown on the terminal.")
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="hyperparameters.json for every training run; flags override it.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar over the runs (default: only on a terminal)."
)
@_read_options
@_hyperparameter_options
def find_label_errors(
    data, output, model, folds, method, work_dir, keep_models, top, overwrite, hp_file, progress, **kw
):
    """Rank the rows of a labelled file by how likely their given label is wrong; write them to a CSV.

    Each row is scored by a model trained without it (K-fold cross-fitting with the recipe of
    `train`) and by how the runs that trained on it learned it. Kill it and run the same command
    again: finished folds are reused.
    """
    from .label_errors import find_label_errors as run_finder

    found = run_finder(
        data,
        output,
        model=model,
        folds=folds,
        method=method,
        hyperparameters=_make_hyperparameters(hp_file, kw),
        read_options=_make_read_options(kw),
        work_dir=work_dir,
        keep_models=keep_models,
        overwrite=overwrite,
        progress=progress,
    )
    click.echo(found.render(top))


if __name__ == "__main__":
    main()
