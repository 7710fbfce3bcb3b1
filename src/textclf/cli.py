"""Command line: parse arguments, call the library, map errors to exit codes.

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

from .choices import BACKEND_CHOICES
from .config import Hyperparameters, RunOptions
from .data import ReadOptions
from .errors import TextclfError
from .export import FORMATS, MAX_ACCURACY_DROP, MAX_CHANGED

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


def _read_options(f):
    f = click.option(
        "--text-column", help="Column (header name, or 0-based index without a header) or JSON key of the text."
    )(f)
    f = click.option(
        "--label-column", help="Column (header name, or 0-based index without a header) or JSON key of the label."
    )(f)
    f = click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the data files.")(f)
    f = click.option(
        "--on-bad-rows",
        type=click.Choice(["error", "skip"]),
        default="error",
        show_default=True,
        help="Stop at the first bad row, or skip bad rows and report them.",
    )(f)
    return f


def _make_read_options(kw: dict) -> ReadOptions:
    return ReadOptions(kw.pop("text_column"), kw.pop("label_column"), kw.pop("encoding"), kw.pop("on_bad_rows"))


def _make_hyperparameters(hp_file: Path | None, kw: dict) -> Hyperparameters:
    """``--hyperparameters FILE`` (or the defaults) with the hyperparameter flags given applied over it."""
    hp = Hyperparameters.from_file(hp_file) if hp_file else Hyperparameters()
    return hp.updated({k: v for k, v in kw.items() if v is not None}, source="command line")


def _backend_options(f):
    """--backend and --dtype, shared by every command that runs a model."""
    f = click.option(
        "--dtype",
        default="float32",
        show_default=True,
        type=click.Choice(["auto", "float32", "bfloat16"]),
        help="torch backend's precision; bfloat16 is ~2x faster on CPUs that have it natively.",
    )(f)
    f = click.option(
        "--backend",
        default="auto",
        show_default=True,
        type=click.Choice(BACKEND_CHOICES),
        help="What runs the model: torch, or an export made by `textclf export`; auto: the fastest export present, else torch.",
    )(f)
    return f


def _run_options(f):
    """One flag per RunOptions field (``--checkpoint-dir DIR``, ``--resume/--no-resume``); help and defaults from the dataclass."""
    for name, type_name, default, help_text, choices in reversed(RunOptions.describe()):
        flag = "--" + name.replace("_", "-")
        kwargs: dict = {"help": help_text, "default": None}
        if type_name == "bool | None":
            flag = f"{flag}/--no-{flag[2:]}"
        elif type_name == "bool":
            kwargs.update(is_flag=True, default=False)
        elif type_name == "int":
            kwargs.update(type=click.IntRange(min=0), help=f"{help_text} [default: {default}]")
        elif choices:
            kwargs.update(type=click.Choice(choices), help=f"{help_text} [default: {default}]")
        f = click.option(flag, name, **kwargs)(f)
    return f


def _make_run_options(kw: dict) -> RunOptions:
    values = {name: kw.pop(name) for name, *_ in RunOptions.describe()}
    return RunOptions().updated({k: v for k, v in values.items() if v is not None})


def _hyperparameter_options(f):
    """One ``--flag-name VALUE`` per Hyperparameters field; help and defaults come from the dataclass."""
    for name, type_name, default, help_text in reversed(Hyperparameters.describe()):
        flag = "--" + name.replace("_", "-")
        shown = str(default).lower() if isinstance(default, bool) else default
        metavar = {"int": "INTEGER", "float": "FLOAT"}.get(type_name, "TEXT")
        kwargs = {"help": f"{help_text} [default: {shown}]", "default": None, "metavar": metavar}
        if type_name == "bool":
            kwargs.update(metavar="true|false", is_flag=False, flag_value="true")
        f = click.option(flag, name, **kwargs)(f)
    return f


# -- commands -----------------------------------------------------------------


@main.command()
@click.option(
    "--data", required=True, help="Training data: a .csv/.tsv/.jsonl/.txt file, or a directory holding data.csv."
)
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Model folder to create.")
@click.option(
    "--model", default=None, help="'default' (embedded MiniLM), a model folder, a textclf output folder, or a Hub id."
)
@click.option("--validation", default=None, help="Validation data (same formats); else a stratified split of --data.")
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
    if best.get("val_accuracy") is not None:
        click.echo(
            f"best epoch {result.best_epoch}: val_accuracy {best['val_accuracy']:.4f}  val_f1 {best['val_f1']:.4f}  (training {result.training_seconds:.1f}s)"
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
    help="JSON or YAML: name -> {type: float|int|categorical, low, high, log, step | choices} [default: learning_rate, batch_size, epochs, less fixed ones].",
)
@click.option(
    "--objective",
    default="val_accuracy",
    show_default=True,
    type=click.Choice(["val_accuracy", "val_loss", "val_f1", "val_mcc"]),
    help="What the best trial is chosen by (its kept epoch's value).",
)
@click.option("--direction", type=click.Choice(["max", "min"]), help="[default: min for val_loss, else max]")
@click.option(
    "--max-trials",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Trials finished (complete or pruned) in the whole study, over all runs and processes.",
)
@click.option(
    "--parallel-trials",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Trials at once, as processes sharing the CPU threads and the study.",
)
@click.option(
    "--strategy",
    default="bayesian",
    show_default=True,
    type=click.Choice(["bayesian", "random", "grid"]),
    help="Optuna sampler: TPE, random, or every grid point (float ranges need a step).",
)
@click.option(
    "--early-stopping-trials",
    default="median",
    show_default=True,
    type=click.Choice(["off", "median", "hyperband"]),
    help="Prune trials whose per-epoch objective falls behind.",
)
@click.option(
    "--pruning-startup-trials",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="median: trials finished before any is pruned.",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds after which no new trial starts.")
@click.option(
    "--storage",
    help="Optuna storage URL shared by several machines, e.g. postgresql://user:pw@host/db [default: sqlite in --output].",
)
@click.option("--study-name", default="textclf", show_default=True, help="Study name within --storage.")
@click.option("--keep-top", type=click.IntRange(min=1), help="Keep only the K best trials' model folders.")
@click.option("--sampler-seed", type=int, help="Seed of the sampler (--seed is training's) [default: none].")
@click.option(
    "--model", default=None, help="'default' (embedded MiniLM), a model folder, a textclf output folder, or a Hub id."
)
@click.option("--validation", default=None, help="Validation data (same formats); else a stratified split of --data.")
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="hyperparameters.json of fixed values; flags override it.",
)
@_read_options
@_hyperparameter_options
def tune(data, output, search_space, hp_file, model, validation, sampler_seed, **kw) -> None:
    """Search hyperparameters with Optuna; keep the best trial's model folder in OUTPUT/best.

    Run the same command again to resume the study (finished trials are kept, an interrupted
    one is retried). Fixed hyperparameters are given as for `train` (--epochs 2 ...).
    """
    from .tuning import tune as run_tuning

    read_options = _make_read_options(kw)
    settings = {
        k: kw.pop(k)
        for k in (
            "objective",
            "direction",
            "max_trials",
            "parallel_trials",
            "strategy",
            "early_stopping_trials",
            "pruning_startup_trials",
            "timeout",
            "storage",
            "study_name",
            "keep_top",
        )
    }
    hp = _make_hyperparameters(hp_file, kw)
    result = run_tuning(
        data,
        output,
        search_space=search_space,
        model=model,
        validation=validation,
        hyperparameters=hp,
        read_options=read_options,
        seed=sampler_seed,
        **settings,
    )
    click.echo(result.render())


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.option("--data", required=True, help="Labelled data, in any format `train` accepts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Texts per forward pass.")
@_backend_options
@_read_options
def evaluate(model_dir, data, as_json, batch_size, backend, dtype, **kw) -> None:
    """Accuracy, macro F1, MCC, per-class scores and confusion matrix."""
    from .evaluation import evaluate as run_evaluation
    from .inference import Classifier

    report = run_evaluation(
        Classifier.load(model_dir, backend=backend, batch_size=batch_size, dtype=dtype), data, _make_read_options(kw)
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())


@main.command()
@click.option(
    "--model-dir", required=True, type=click.Path(path_type=Path), help="Model folder written by `textclf train`."
)
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(path_type=Path), help="File with one text per line.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --input.")
@click.option(
    "--json", "as_json", is_flag=True, help='One {"probabilities", "labels", "predicted_label"} JSON line per text.'
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Texts per forward pass.")
@_backend_options
def predict(model_dir, texts, input_file, encoding, as_json, batch_size, backend, dtype) -> None:
    """Classify TEXTS (or the lines of --input)."""
    from .data import read_texts
    from .inference import Classifier

    if input_file is not None and texts:
        raise click.UsageError("give texts as arguments or --input FILE, not both.")
    texts = read_texts(input_file, encoding) if input_file is not None else list(texts)
    if not texts:
        raise click.UsageError("nothing to classify: pass texts as arguments or --input FILE.")
    clf = Classifier.load(model_dir, backend=backend, batch_size=batch_size, dtype=dtype)
    for text, pred in zip(texts, clf.predict(texts)):
        if as_json:
            click.echo(json.dumps(pred.to_dict()))
        else:
            probs = "  ".join(f"{label}={p:.3f}" for label, p in zip(pred.labels, pred.probabilities))
            shown = text if len(text) <= 70 else text[:67] + "..."
            click.echo(f"{pred.predicted_label}\t{probs}\t{shown}")


@main.command()
@click.option("--model-dir", default=None, help="Model folder to serve [default: $SM_MODEL_DIR, else /opt/ml/model].")
@click.option(
    "--model",
    default=None,
    help="Serve a model never fine-tuned here: a Hub id or a local HF classification folder [default: $HF_MODEL_ID].",
)
@click.option("--host", default=None, help="Address to bind [default: 127.0.0.1; 0.0.0.0 to accept other machines].")
@click.option("--port", default=None, type=int, help="Port [default: $SAGEMAKER_BIND_TO_PORT, else 8080].")
@click.option("--workers", default=None, type=int, help="Processes, each with its own model and batcher [default: 1].")
@click.option("--max-batch-size", default=None, type=int, help="Texts per forward pass [default: 64].")
@click.option(
    "--max-batch-delay-ms",
    default=None,
    type=float,
    help="How long a batch may wait for more texts while requests are arriving [default: 5].",
)
@click.option(
    "--backend",
    default=None,
    type=click.Choice(BACKEND_CHOICES),
    help="torch, or an export made by `textclf export` [default: auto, the fastest export present, else torch].",
)
@click.option(
    "--dtype",
    default=None,
    type=click.Choice(["auto", "float32", "bfloat16"]),
    help="auto: bfloat16 where the CPU has it natively (~2x faster, probabilities within ~1e-2), else float32 [default: auto].",
)
@click.option("--max-payload-mb", default=None, type=float, help="Larger request bodies get 413 [default: 6].")
@click.option("--access-log/--no-access-log", default=None, help="Log every request [default: off].")
def serve(**kw) -> None:
    """Serve a model over HTTP (SageMaker-compatible /invocations, web page at /)."""
    from .serving import ServeConfig
    from .serving import serve as run_server

    run_server(ServeConfig.resolve(**kw))


@main.command("export")
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder written by `textclf train` (the export is written into it).",
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(FORMATS),
    help="What to write: model.torchscript.pt, model.onnx or model.int8.onnx.",
)
@click.option(
    "--validation",
    default=None,
    help="Labelled data: compare the export's predictions and accuracy with the PyTorch model's.",
)
@click.option(
    "--max-changed",
    default=MAX_CHANGED,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of --validation predictions the export may change before it is refused.",
)
@click.option(
    "--max-accuracy-drop",
    default=MAX_ACCURACY_DROP,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Accuracy on --validation the export may lose before it is refused (0.005 = half a point).",
)
@click.option("--force", is_flag=True, help="Keep an export that fails the --max-changed or --max-accuracy-drop check.")
@click.option(
    "--per-channel/--per-tensor",
    default=True,
    show_default=True,
    help="onnx-int8: one weight scale per output channel (keeps accuracy) or one per tensor.",
)
@click.option(
    "--keep-fp32",
    multiple=True,
    type=click.Choice(["ffn_output", "classifier"]),
    help="onnx-int8: leave these layers in fp32 (repeatable; slower).",
)
@_read_options
def export_command(
    model_dir, fmt, validation, max_changed, max_accuracy_drop, force, per_channel, keep_fp32, **kw
) -> None:
    """Write a verified TorchScript, ONNX or int8 ONNX export into the model folder."""
    from .export import QuantizationSettings, export_model

    report = export_model(
        model_dir,
        fmt,
        validation,
        _make_read_options(kw),
        force=force,
        max_changed=max_changed,
        max_accuracy_drop=max_accuracy_drop,
        quantization=QuantizationSettings(per_channel=per_channel, keep_fp32=tuple(keep_fp32)),
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(report.render())


@main.command()
@click.option(
    "--model", default=None, help="A model (as for train); a textclf folder shows the values it was trained with."
)
@click.option("--explain", is_flag=True, help="A table with each hyperparameter's meaning instead of JSON.")
def hyperparameters(model, explain) -> None:
    """Print the training hyperparameters and their defaults as JSON."""
    from . import artifact
    from .models import resolve_model

    values = Hyperparameters().to_dict()
    source = resolve_model(model)
    if source.kind == "artifact":
        stored = (artifact.read_metadata(source.location) or {}).get("hyperparameters", {})
        values = Hyperparameters.from_mapping(stored, source=f"{source.location}/textclf.json").to_dict()
    if not explain:
        click.echo(json.dumps(values, indent=2))
        return
    for name, type_name, _, help_text in Hyperparameters.describe():
        click.echo(f"{name:<28} {type_name:<6} {str(values[name]):<8} {help_text}")


def _batch_options(f):
    """``batch``'s own options, so its command definition stays readable."""
    from .batch import DEFAULT_CHUNK_SIZE, FORMATS, OUTPUT_FORMATS

    options = [
        click.option(
            "--format",
            "input_format",
            type=click.Choice(FORMATS),
            default="auto",
            show_default=True,
            help="Input format; auto: .csv, .tsv, .jsonl/.jsonlines/.ndjson by suffix, any other file one text per line. "
            "text-csv: JumpStart's header-less text/csv, one (quoted) text per record.",
        ),
        click.option(
            "--text-column",
            "--text-field",
            "text_column",
            help="Text column (header name, or 0-based index without a header) or JSON key [default: found by name, e.g. text, sentence].",
        ),
        click.option(
            "--label-column",
            "--label-field",
            "label_column",
            help="Label column or JSON key, for --evaluate [default: found by name, e.g. label].",
        ),
        click.option(
            "--id-column", "--id-field", "id_column", help='Column or JSON key copied to each output line as "id".'
        ),
        click.option(
            "--header/--no-header",
            default=None,
            help="Whether CSV/TSV files start with a header [default: yes if a column is given by name or the first row names a text column].",
        ),
        click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the input files."),
        click.option(
            "--output-format",
            type=click.Choice(OUTPUT_FORMATS),
            default="jsonl",
            show_default=True,
            help="jsonl: {line, [id,] predicted_label, probabilities, labels, [source]} per line; csv: line,[id,]predicted_label,p_0,...,p_K-1[,input fields].",
        ),
        click.option("--join-source", is_flag=True, help="Add the whole input record to each output line."),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=DEFAULT_CHUNK_SIZE,
            show_default=True,
            help="Records per chunk, the unit of work written at once (and of resuming and sharding).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Processes, each with its own model; the CPU threads are split among them.",
        ),
        click.option(
            "--shard",
            default="0/1",
            show_default=True,
            help="i/N: score only the i-th (0-based) of N contiguous shares of the job's chunks; give each shard its own --output.",
        ),
        click.option(
            "--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Texts per forward pass."
        ),
        click.option(
            "--evaluate",
            is_flag=True,
            help="Print accuracy, F1, MCC and the confusion matrix against the inputs' labels, as `textclf evaluate` does.",
        ),
        click.option("--json", "as_json", is_flag=True, help="With --evaluate: print the report as one JSON object."),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Progress bar with rate and ETA (default: only on a terminal).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


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
@_batch_options
@_backend_options
def batch(model_dir, input_path, output, input_format, shard, evaluate, as_json, progress, **kw) -> None:
    """Score large files offline: one <name>.out per input file, in input order.

    Kill it at any moment and run the same command again: it resumes, and the outputs are
    byte for byte those of an uninterrupted run. Records that cannot be read go to
    <name>.errors with their line number and reason, and the job goes on.

    Exit codes: 0 done; 3 done, but some records went to .errors; 2 bad usage or input
    (nothing written that is not this job's); 1 unexpected; 130 interrupted (rerun to resume).
    """
    from .batch import BatchOptions, parse_shard, run_batch

    options = BatchOptions(format=input_format, shard=parse_shard(shard), evaluate=evaluate, **kw)
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


if __name__ == "__main__":
    main()
