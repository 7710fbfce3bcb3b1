"""``tune()``: check everything, run the study, write its outputs, return the best model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import artifact
from ..config import Hyperparameters
from ..data import ReadOptions, load_training_data
from ..errors import ArtifactError, ConfigError
from ..progress import log_stderr
from .config import TuneConfig, TuneSettings
from .space import DEFAULT_SPACE, SearchSpace

__all__ = ["TuneResult", "tune"]


@dataclass
class TuneResult:
    """A finished (or timed-out) study: the best trial, where its model is, and every trial's row."""

    output: Path
    objective: str
    direction: str
    best_trial: int | None
    best_value: float | None
    best_params: dict = field(default_factory=dict)
    best_path: Path | None = None  # OUTPUT/best, a model folder every textclf command loads
    trials: list[dict] = field(default_factory=list)  # the rows of study.csv
    plots: list[Path] = field(default_factory=list)
    summary: str = ""

    def render(self) -> str:
        if self.best_trial is None:
            return f"{self.summary}\nno trial completed; nothing in {self.output / 'best'}"
        where = f"model folder {self.best_path}" if self.best_path else "its model folder is on another machine"
        return f"{self.summary}\nbest: trial {self.best_trial}, {self.objective} {self.best_value:.4f}; {where}"


def tune(
    data: str | Path,
    output: str | Path,
    *,
    search_space: str | Path | Mapping | SearchSpace | None = None,
    settings: TuneSettings | None = None,
    model: str | Path | None = None,
    validation: str | Path | None = None,
    hyperparameters: Hyperparameters | None = None,
    read_options: ReadOptions | None = None,
    first_trials: Sequence[Mapping[str, Any]] = (),
    log: Callable[[str], None] = log_stderr,
    **keywords: Any,
) -> TuneResult:
    """Search hyperparameters with Optuna and keep the best trial's model in ``output/best``.

    ``keywords`` are :class:`~textclf.tuning.TuneSettings` (``max_trials=8``, ``strategy="random"``,
    ``seed`` the sampler's ...), applied over ``settings``, and fixed hyperparameters
    (``epochs=2``), applied over ``hyperparameters`` as for :func:`textclf.train`.
    ``search_space`` is a space file, a mapping in the same shape, or None for
    :data:`~textclf.tuning.space.DEFAULT_SPACE` less the fixed names. ``first_trials`` are
    parameter sets tried before the sampler's (e.g. the defaults, as a baseline). Running the
    same call again resumes the study stored in ``output/study.db`` (or ``storage``).

        >>> import textclf
        >>> result = textclf.tune("reviews.csv", "out/tuned", max_trials=8, epochs=2)  # doctest: +SKIP
        >>> result.best_params, result.best_value  # doctest: +SKIP
        ({'learning_rate': 6.1e-05, 'batch_size': 16}, 0.93)
        >>> textclf.Classifier.load(result.best_path)  # doctest: +SKIP
    """
    settings, overrides = TuneSettings.split(keywords, settings)
    hp = (hyperparameters or Hyperparameters()).updated(overrides, source="tune()")
    config = TuneConfig(
        data=str(data),
        output=Path(output),
        space=_space(search_space, hp),
        hyperparameters=hp,
        model=model,
        validation=validation,
        read_options=read_options or ReadOptions(),
        settings=settings,
    )
    from ..models import resolve_model  # torch: not imported with the package (the CLI reads TuneSettings)

    _check_output(config.output)
    resolve_model(config.model)  # a bad --model or data file fails here, before the study exists
    td = load_training_data(config.data, config.validation, config.read_options, hp.validation_split_ratio, hp.seed)
    config = dataclasses.replace(config, settings=settings.for_task(td.labels.multi_label))
    return run(config, first_trials, log)


def _space(search_space: str | Path | Mapping | SearchSpace | None, hp: Hyperparameters) -> SearchSpace:
    """The given space (which must not search a fixed hyperparameter), or the default one less the fixed."""
    fixed = {k: v for k, v in hp.to_dict().items() if v != getattr(Hyperparameters(), k)}
    if search_space is None:
        return SearchSpace.from_mapping(DEFAULT_SPACE, "default search space").without(fixed)
    if isinstance(search_space, SearchSpace):
        space = search_space
    elif isinstance(search_space, Mapping):
        space = SearchSpace.from_mapping(search_space)
    else:
        space = SearchSpace.from_file(search_space)
    both = [n for n in space.names if n in fixed]
    if both:
        raise ConfigError(
            f"{space.source}: {both[0]} is searched there and also fixed to {fixed[both[0]]!r}; drop one of the two."
        )
    return space


def run(
    config: TuneConfig, first_trials: Sequence[Mapping[str, Any]] = (), log: Callable[[str], None] = log_stderr
) -> TuneResult:
    """Run a checked study (see :func:`tune`) and write its outputs."""
    from . import outputs
    from .runner import recover, run_workers
    from .study import FINISHED, open_storage, open_study

    config.output.mkdir(parents=True, exist_ok=True)
    storage = open_storage(config)
    study = open_study(config, storage=storage)
    for params in first_trials:
        study.enqueue_trial(dict(params), skip_if_exists=True)
    recover(study, storage, config.output, log)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    if done:
        log(f"resuming study {config.settings.study_name!r}: {done} of {config.settings.max_trials} trials finished")
    try:
        run_workers(config, log)
    except KeyboardInterrupt:
        log("interrupted: run the same command again to resume the study")
        raise

    # several processes (or machines sharing OUTPUT) end one study: whoever writes last reads every trial
    with outputs.publishing(config.output):
        trials = outputs.trials_of(study)  # one read: rows and ranking of the same trials
        rows = outputs.trial_rows(trials, config)
        outputs.write_study_csv(rows, config.output / outputs.STUDY_CSV)
        plots = outputs.write_plots(study, config.output, log)
        order = outputs.ranked(trials, config)
        summary = outputs.render(rows, order, config)
        if not order:
            return TuneResult(
                config.output,
                config.settings.objective,
                config.settings.direction,
                None,
                None,
                trials=rows,
                plots=plots,
                summary=summary,
            )
        best = order[0]
        best_path = outputs.publish_best(best, config, log)
        if config.settings.keep_top:
            outputs.keep_top(order, config, log)
        return TuneResult(
            config.output,
            config.settings.objective,
            config.settings.direction,
            best.number,
            best.value,
            dict(best.params),
            best_path,
            rows,
            plots,
            summary,
        )


def _check_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise ArtifactError(f"{output}: exists and is not a folder; choose another --output.")
    if (output / artifact.METADATA_FILE).is_file():
        raise ArtifactError(f"{output}: is a textclf model folder, not a tuning folder; choose another --output.")
