"""Fine-tuning: :func:`train` and the modules it is made of, in the order a run uses them.

loop.py         train(): set up a run, then the epoch loop; TrainResult
run.py          Run (everything the loop works with), setup(), TrainingHooks
auto.py         the hyperparameters left unset, chosen from the model and the data
batches.py      make_batches(): length-grouped batches per process, sifted or not
sifting.py      loss-based sifting (SiftingConfig, SiftingDataLoader), usable in any PyTorch loop
epoch.py        train_epoch(): one pass, gradient accumulation, optimizer_step()
schedule.py     LinearSchedule: warmup and decay by the share of the data consumed
records.py      an epoch's record and log line (training figures, validation metrics)
state.py        TrainingState: what a checkpoint holds; BestEpoch, Tally
checkpoint.py   checkpoint files, the job they belong to, SIGINT/SIGTERM
distributed.py  World: every call across processes (torchrun, DDP) behind one object
"""

from .loop import TrainResult, train
from .run import Run, TrainingHooks

__all__ = ["Run", "TrainResult", "TrainingHooks", "train"]
