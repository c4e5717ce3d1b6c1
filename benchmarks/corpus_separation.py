"""The train/dev separation check: no Debian package and no audio file (by SHA-1) in both corpora.

    python benchmarks/corpus_separation.py --dev ~/data/siamrec-dev --train ~/data/siamrec-train [--train ...]

Run it before training or fitting anything shipped on a train corpus; it exits 1 when anything is shared.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import click


def corpus_contents(root: Path) -> tuple[set[str], set[str]]:
    """The corpus's packages and its audio files' SHA-1s, from its tracks.tsv."""
    with open(root / "tracks.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    hashes = set()
    for row in rows:
        digest = hashlib.sha1()
        with open(root / row["path"], "rb") as audio:
            for block in iter(lambda: audio.read(1 << 20), b""):
                digest.update(block)
        hashes.add(digest.hexdigest())
    return {row["package"] for row in rows}, hashes


@click.command()
@click.option("--dev", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--train", "trains", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))  # fmt: skip
def main(dev: Path, trains: tuple[Path, ...]) -> None:
    dev_packages, dev_audio = corpus_contents(dev)
    train_packages, train_audio = set(), set()
    for root in trains:
        packages, audio = corpus_contents(root)
        train_packages |= packages
        train_audio |= audio
    shared_packages = sorted(dev_packages & train_packages)
    shared_audio = dev_audio & train_audio
    print(f"packages: dev {len(dev_packages)}, train {len(train_packages)}, in both: {shared_packages or 'none'}")
    print(f"audio files: dev {len(dev_audio)}, train {len(train_audio)}, identical in both: {len(shared_audio)}")
    sys.exit(1 if shared_packages or shared_audio else 0)


if __name__ == "__main__":
    main()
