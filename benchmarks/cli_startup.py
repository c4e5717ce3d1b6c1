"""Start-up time of `siamrec --help`, `--version` and a command's own --help, from `python -X importtime`.

    python benchmarks/cli_startup.py [--runs 5]

Prints the import time Python reports (sum of the top-level imports, the interpreter's own start-up
excluded) and the wall time of the whole process, best of N runs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

CASES = [["--help"], ["--version"], ["info", "--help"], ["recommend", "--help"]]


def import_seconds(args: list[str]) -> float:
    """Total cumulative import time of top-level modules reported by -X importtime (seconds)."""
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "siamrec", *args], capture_output=True, text=True, check=True
    ).stderr
    total_us = 0
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)$", line)
        if match and match.group(2) == "":  # top level: no indentation
            total_us += int(match.group(1))
    return total_us / 1e6


def wall_seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "siamrec", *args], capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'siamrec …':<22} {'imports (s)':>12} {'process (s)':>12}")
    for case in CASES:
        imports = min(import_seconds(case) for _ in range(args.runs))
        wall = min(wall_seconds(case) for _ in range(args.runs))
        print(f"{' '.join(case):<22} {imports:>12.3f} {wall:>12.3f}")


if __name__ == "__main__":
    main()
