"""Draw a run's training curve from its log.csv: losses, collapse figure and validation R-precision.

    python benchmarks/training_curve.py ~/runs/default/log.csv -o siamrec/assets/training_curve.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VALIDATION = {
    "r_precision": "vector as shipped",
    "r_precision_adapted": "adapted (fitted on seeds)",
    "r_precision_mean_pooling": "mean pooling only",
    "r_precision_learned": "learned part alone",
    "r_precision_chance": "chance",
}


def _column(rows: list[dict[str, str]], name: str) -> tuple[list[float], list[float]]:
    points = [(float(r["epoch"]), float(r[name])) for r in rows if r.get(name) not in (None, "", "nan")]
    return [p[0] for p in points], [p[1] for p in points]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    with open(args.log, newline="") as handle:
        rows = list(csv.DictReader(handle))
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for axis, name, title in ((axes[0], "loss", "SimSiam loss"), (axes[1], "collapse", "collapse figure (≈1 healthy)")):
        axis.plot(*_column(rows, name), marker=".", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
    epochs, distill = _column(rows, "distill_loss")
    if distill:  # a run with --teacher: its 1 − cosine to the teacher beside SimSiam's loss
        axes[0].plot(epochs, distill, marker=".", label="distillation (1 − cos)")
        axes[0].set_title("losses")
        axes[0].legend(fontsize=7)
    for name, label in VALIDATION.items():
        epochs, values = _column(rows, name)
        if values:
            axes[2].plot(epochs, values, marker="o", label=label, linestyle="--" if name.endswith("chance") else "-")
    axes[2].set_title("validation R-precision (dev corpus)")
    axes[2].set_xlabel("epoch")
    axes[2].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
