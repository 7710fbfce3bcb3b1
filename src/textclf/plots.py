"""Training curves as a PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]


def plot_curves(history: Sequence[dict], path: Path, title: str) -> None:
    """Train/val loss and val accuracy (multi-label: micro F1) by epoch, side by side; mid-epoch checks as dots
    where they fell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    if any(h.get("val_loss") is not None for h in history):
        loss_ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="val loss")
        (main, main_name), (second, second_name) = _scores(history[0])
        acc_ax.plot(epochs, [h[main] for h in history], "o-", color="tab:green", label=main_name)
        acc_ax.plot(epochs, [h[second] for h in history], "s--", color="tab:olive", label=second_name)
        checks = [(h["epoch"] - 1 + c["rows"] / h["samples_seen"], c) for h in history for c in h.get("checks", ())]
        if checks:
            at = [x for x, _ in checks]
            loss_ax.plot(at, [c["val_loss"] for _, c in checks], ".", color="tab:orange", label="val loss (mid-epoch)")
            acc_ax.plot(at, [c[main] for _, c in checks], ".", color="tab:green", label=f"{main_name} (mid-epoch)")
        acc_ax.legend()
    else:
        acc_ax.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=acc_ax.transAxes)
    loss_ax.set(xlabel="epoch", ylabel="binary cross-entropy" if "val_micro_f1" in history[0] else "cross-entropy")
    loss_ax.set(title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="score", title="Validation")
    loss_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scores(record: dict) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two validation scores drawn (key, legend): accuracy and macro F1, or micro and macro F1 (multi-label)."""
    if "val_micro_f1" in record:
        return ("val_micro_f1", "val F1 (micro)"), ("val_macro_f1", "val F1 (macro)")
    return ("val_accuracy", "val accuracy"), ("val_f1", "val F1 (macro)")
