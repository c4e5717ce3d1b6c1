"""Size of each siamrec install on a fresh virtual environment: packages and megabytes.

    python benchmarks/install_size.py                  # core, then core + each extra
    python benchmarks/install_size.py --extras ""      # the core install only

Each install goes into a new venv in a temporary folder (pip's cache makes repeats fast); the size is
the venv's site-packages on disk, minus an empty venv's (pip and setuptools themselves).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def measure(extra: str) -> tuple[int, float]:
    """(packages, MB) of `pip install .[extra]` in a fresh venv, pip/setuptools not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        site = next(venv.glob("lib/python*/site-packages"))
        empty_mb = folder_mb(site)
        target = f"{ROOT}[{extra}]" if extra else str(ROOT)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", target],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format=freeze", "--exclude", "pip", "--exclude", "setuptools"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return len(listed), folder_mb(site) - empty_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default=",bench,fetch,train", help="comma-separated; empty item = core")
    args = parser.parse_args()
    print(f"{'install':<24} {'packages':>8} {'MB':>8}")
    for extra in args.extras.split(","):
        packages, mb = measure(extra)
        print(f"{'siamrec' + (f'[{extra}]' if extra else ''):<24} {packages:>8} {mb:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
