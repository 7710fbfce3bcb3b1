"""Hyperparameter tuning with Optuna: ``textclf tune`` and :func:`textclf.tune`.

space.py    the search space file: parsed and checked against Hyperparameters
config.py   TuneSettings, the search's settings (the tune flags); TuneConfig, the whole run
study.py    the Optuna study: storage, sampler, pruner, recovery of lost trials
runner.py   one trial = one train() reporting each epoch; workers and processes
outputs.py  study.csv, plots, best/, --keep-top, the summary table
tuner.py    tune(): check, run, write, return a TuneResult
"""

from .config import TuneConfig, TuneSettings
from .space import DEFAULT_SPACE, Param, SearchSpace
from .tuner import TuneResult, tune

__all__ = ["DEFAULT_SPACE", "Param", "SearchSpace", "TuneConfig", "TuneResult", "TuneSettings", "tune"]
