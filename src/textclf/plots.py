"""Training curves as a PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]


def plot_curves(history: Sequence[dict], path: Path, title: str) -> None:
    """Train/val loss and val accuracy by epoch, side by side; mid-epoch checks as dots where they fell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    if any(h.get("val_loss") is not None for h in history):
        loss_ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="val loss")
        acc_ax.plot(epochs, [h["val_accuracy"] for h in history], "o-", color="tab:green", label="val accuracy")
        acc_ax.plot(epochs, [h["val_f1"] for h in history], "s--", color="tab:olive", label="val F1 (macro)")
        checks = [(h["epoch"] - 1 + c["rows"] / h["samples_seen"], c) for h in history for c in h.get("checks", ())]
        if checks:
            at = [x for x, _ in checks]
            loss_ax.plot(at, [c["val_loss"] for _, c in checks], ".", color="tab:orange", label="val loss (mid-epoch)")
            acc_ax.plot(
                at, [c["val_accuracy"] for _, c in checks], ".", color="tab:green", label="val accuracy (mid-epoch)"
            )
        acc_ax.legend()
    else:
        acc_ax.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=acc_ax.transAxes)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="score", title="Validation")
    loss_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
