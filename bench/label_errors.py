"""Benchmark: `textclf find-label-errors` against cleanlab on SST-2 rows with 10% of their labels flipped.

--rows seeded SST-2 training rows (random.Random(--seed).shuffle of train.tsv, the first N; default
4,000), --noise of them (10%) given the other label (a seeded sample; saved with their file lines to
bench/out/label_errors_flips.json), written as a `label,text` CSV. Then, in one process:

  cross-fit  `find_label_errors(method="cross-fit")`: K = --folds trainings of the default recipe
             (the embedded MiniLM, textclf's automatic hyperparameters), each scoring the fold it left
             out; ranked by out-of-sample self-confidence, flagged by confident learning's rule
  combined   the same runs' scores (reused, no training), ranked by the mean of the out-of-sample
             self-confidence and the fold runs' in-sample training confidence (cartography)
  dynamics   `find_label_errors(method="dynamics")`: ONE training on every row, ranked by its training
             dynamics (each row's mean probability of its given label over the epochs)
  cleanlab   `cleanlab.filter.find_label_issues(labels, pred_probs, return_indices_ranked_by=
             "self_confidence")` on the same out-of-sample probabilities (its defaults otherwise:
             prune_by_noise_rate); when it flags fewer than k rows, precision at k also from
             `cleanlab.rank.get_label_quality_scores`'s ranking

For each: the rows flagged, their precision and recall against the flipped set, and precision at
k = the number flipped (the top k of the ranking); wall times (textclf's include every training).
Offline rules are scored too (the arrays are saved to bench/out/label_errors_scores.npz, so other
rules can be compared without retraining): out-of-sample self-confidence, fold-run dynamics, their
mean, single-run dynamics (all epochs; from epoch 2), cleanlab's normalized margin. Prints the CPU
flags line, a Markdown table for bench/RESULTS.md and the targets as PASS/MISS lines (textclf's
precision at k >= cleanlab's, and >= 0.8); writes every figure to --json.

The fold runs' scores are kept in --work (bench/out/label_errors_work): a killed run resumes; --fresh
starts it again (the wall times are only whole on a fresh run; the output says which runs were reused).

Duration (2 CPU cores, float32): 5 trainings on 3,200 rows and one on 4,000, about 20 minutes on an
idle machine; 77 minutes on 2 cores shared with other jobs (2026-12-07, bench/RESULTS.md). The smoke
run below took 7 minutes there.

    .venv/bin/python bench/label_errors.py --fresh                          # 4,000 rows, K=5
    .venv/bin/python bench/label_errors.py --rows 800 --folds 2 --fresh     # smoke run
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import csv
import importlib.metadata
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from textclf.config import Hyperparameters
from textclf.label_errors import DEFAULT_METHOD, find_label_errors
from textclf.models import cpu_flags
from textclf.progress import log_stderr

BENCH = Path(__file__).resolve().parent
DATA = BENCH.parents[1] / "shared" / "data" / "sst2" / "train.tsv"
OUT = BENCH / "out"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4000, help="SST-2 training rows (default 4000)")
    p.add_argument("--noise", type=float, default=0.1, help="share of the rows whose label is flipped (default 0.1)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="the rows' shuffle and the flips (default 0)")
    p.add_argument("--model", default=None, help="--model for every training (default: the embedded MiniLM)")
    p.add_argument("--data", type=Path, default=DATA, help=f"SST-2 train.tsv (default {DATA})")
    p.add_argument("--work", type=Path, default=OUT / "label_errors_work", help="the finder's work folder")
    p.add_argument("--fresh", action="store_true", help="discard --work first (whole wall times)")
    p.add_argument("--json", type=Path, default=OUT / "label_errors.json", help="write every figure here")
    return p.parse_args()


def noisy_sst2(args) -> tuple[Path, np.ndarray, np.ndarray]:
    """The CSV of --rows shuffled SST-2 rows with --noise of them flipped; (path, given labels, flipped mask)."""
    with args.data.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if next(reader) != ["sentence", "label"]:
            sys.exit(f"{args.data}: expected the header 'sentence<TAB>label'")
        rows = [(sentence.strip(), int(label)) for sentence, label in reader]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    rows = rows[: args.rows]
    flipped = np.zeros(len(rows), dtype=bool)
    flipped[rng.sample(range(len(rows)), round(len(rows) * args.noise))] = True
    given = np.array([1 - label if flip else label for (_, label), flip in zip(rows, flipped)], dtype=np.int64)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"label_errors_sst2_{len(rows)}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["label", "text"])
        writer.writerows((label, text) for (text, _), label in zip(rows, given))
    flips = {
        "source": str(args.data),
        "rows": len(rows),
        "seed": args.seed,
        "noise": args.noise,
        "flipped_rows": np.flatnonzero(flipped).tolist(),  # 0-based data rows
        "flipped_lines": (np.flatnonzero(flipped) + 2).tolist(),  # lines of the CSV (line 1 is the header)
    }
    (OUT / "label_errors_flips.json").write_text(json.dumps(flips) + "\n")
    return path, given, flipped


def scores(flagged: np.ndarray | None, ranking: np.ndarray, flipped: np.ndarray) -> dict:
    """Precision and recall of the flagged rows (indexes), and precision at k = the number flipped of ``ranking``."""
    k = int(flipped.sum())
    out = {"precision_at_k": float(flipped[ranking[:k]].mean()), "k": k}
    if flagged is not None:
        hits = int(flipped[flagged].sum())
        out.update(
            flagged=len(flagged),
            precision=hits / max(len(flagged), 1),
            recall=hits / k,
        )
    return out


def ranking_of(score: np.ndarray) -> np.ndarray:
    """Row indexes, most suspect (highest score) first; ties in row order."""
    return np.lexsort((np.arange(len(score)), -score))


def run_finder(method: str, data: Path, args) -> tuple:
    began = time.perf_counter()
    found = find_label_errors(
        data,
        OUT / f"label_errors_{method}.csv",
        model=args.model,
        folds=args.folds,
        method=method,
        hyperparameters=Hyperparameters(),
        work_dir=args.work,
        overwrite=True,
        progress=False,
    )
    seconds = time.perf_counter() - began
    lines = {line: i for i, line in enumerate(range(2, len(found.rows) + 2))}
    ranking = np.array([lines[row.line] for row in found.rows])
    flagged = np.array([lines[row.line] for row in found.flagged], dtype=np.int64)
    return found, ranking, flagged, seconds


def single_run_dynamics(work: Path) -> np.ndarray:
    """The single run's per-epoch confidences (epochs x rows, file order)."""
    with np.load(work / "whole.npz") as saved:
        conf = np.full((saved["dyn_confidence"].shape[0], saved["rows"].size), np.nan, dtype=np.float32)
        conf[:, saved["dyn_rows"]] = saved["dyn_confidence"]
    return conf


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    args = parse_args()
    flags = cpu_flags()
    cpu_line = (
        f"CPU flags: avx2={'avx2' in flags} avx512_bf16={'avx512_bf16' in flags} amx_bf16={'amx_bf16' in flags}; "
        f"{os.cpu_count()} cores"
    )
    log_stderr(cpu_line)
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    data, given, flipped = noisy_sst2(args)
    log_stderr(f"{data}: {len(given):,} rows, {int(flipped.sum())} labels flipped (seed {args.seed})")
    results, timing = {}, {}

    found, ranking, flagged, seconds = run_finder("cross-fit", data, args)
    probs, fold_dyn = found.probabilities.astype(np.float64), found.dynamics
    results["textclf cross-fit"] = scores(flagged, ranking, flipped)
    timing["textclf cross-fit"] = {"seconds": seconds, "trained": found.trained, "reused": found.reused}

    found_c, ranking, flagged, seconds = run_finder("combined", data, args)
    results["textclf combined"] = scores(flagged, ranking, flipped)
    timing["textclf combined"] = {"seconds": seconds + timing["textclf cross-fit"]["seconds"], "trained": 0}

    found_d, ranking, flagged, seconds = run_finder("dynamics", data, args)
    results["textclf dynamics (1 run)"] = scores(flagged, ranking, flipped)
    timing["textclf dynamics (1 run)"] = {"seconds": seconds, "trained": found_d.trained, "reused": found_d.reused}

    import cleanlab
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    began = time.perf_counter()
    issues = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
    cl_seconds = time.perf_counter() - began
    k = int(flipped.sum())
    quality = get_label_quality_scores(given, probs, method="self_confidence")
    cl_ranking = issues if len(issues) >= k else ranking_of(-quality)
    results["cleanlab find_label_issues"] = scores(issues, cl_ranking, flipped)
    results["cleanlab find_label_issues"]["ranking_for_k"] = (
        "its issues" if len(issues) >= k else "get_label_quality_scores (it flags fewer than k)"
    )
    results["cleanlab get_label_quality_scores"] = scores(None, ranking_of(-quality), flipped)
    timing["cleanlab find_label_issues"] = {
        "seconds": cl_seconds + timing["textclf cross-fit"]["seconds"],
        "own_seconds": cl_seconds,
    }

    # offline rules on the same arrays
    idx = np.arange(len(given))
    self_conf = probs[idx, given]
    single = single_run_dynamics(args.work)
    with np.errstate(invalid="ignore"):
        rules = {
            "out-of-sample self-confidence": 1 - self_conf,
            "fold-run dynamics (mean confidence)": 1 - np.nan_to_num(fold_dyn, nan=0.5),
            "mean of the two": 1 - np.where(np.isnan(fold_dyn), self_conf, (self_conf + fold_dyn) / 2),
            "single-run dynamics, all epochs": 1 - np.nanmean(single, axis=0),
            "single-run dynamics, from epoch 2": 1 - np.nanmean(single[1:], axis=0) if len(single) > 1 else None,
            "single-run variability (std)": np.nanstd(single, axis=0),
            "normalized margin (cleanlab's other rank)": -get_label_quality_scores(
                given, probs, method="normalized_margin"
            ),
        }
    offline = {name: scores(None, ranking_of(s), flipped) for name, s in rules.items() if s is not None}
    np.savez_compressed(
        OUT / "label_errors_scores.npz",
        given=given,
        flipped=flipped,
        out_of_sample_probs=probs,
        fold_dynamics_mean=fold_dyn if fold_dyn is not None else np.full(len(given), np.nan),
        single_run_confidence=single,
        single_run_probs=found_d.probabilities,
    )

    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "cpu": cpu_line,
        "versions": {name: version_of(name) for name in ("textclf", "cleanlab", "torch", "transformers")},
        "cleanlab_version": cleanlab.__version__,
        "results": results,
        "timing": timing,
        "offline_rules": offline,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{cpu_line}")
    print(f"{len(given):,} SST-2 rows, {k} flipped (k); folds {args.folds}; cleanlab {cleanlab.__version__}\n")
    print("| finder | flagged | precision | recall | precision at k | wall s | trainings |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        t = timing.get(name, {})
        flagged_cells = f"{r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f}" if "flagged" in r else "- | - | -"
        runs = {"textclf dynamics (1 run)": "1"}.get(name, str(args.folds))
        wall = f"{t['seconds']:.0f}" if "seconds" in t else "-"
        print(f"| {name} | {flagged_cells} | {r['precision_at_k']:.3f} | {wall} | {runs} |")
    print("\n| ranking rule (offline, same arrays) | precision at k |")
    print("|---|---:|")
    for name, r in offline.items():
        print(f"| {name} | {r['precision_at_k']:.3f} |")
    reused = [name for name, t in timing.items() if t.get("reused")]
    if reused:
        print(f"\nnote: {', '.join(reused)} reused finished runs from {args.work}; their wall times are partial")
    default = {"cross-fit": "textclf cross-fit", "combined": "textclf combined"}.get(
        DEFAULT_METHOD, "textclf dynamics (1 run)"
    )
    ours, theirs = results[default]["precision_at_k"], results["cleanlab find_label_issues"]["precision_at_k"]
    best_name = max((n for n in results if n.startswith("textclf")), key=lambda n: results[n]["precision_at_k"])
    print(f"\ndefault method: {DEFAULT_METHOD}")
    print(f"{'PASS' if ours >= theirs else 'MISS'} {default}: precision at k {ours:.3f} >= cleanlab's {theirs:.3f}")
    print(f"{'PASS' if ours >= 0.8 else 'MISS'} {default}: precision at k {ours:.3f} >= 0.8")
    print(f"     best textclf method by precision at k: {best_name} ({results[best_name]['precision_at_k']:.3f})")


if __name__ == "__main__":
    main()
