"""Rebuild examples/ from the dev corpus (../shared/corpus): short excerpts, playlists, sources and licences.

    python examples/make_examples.py ~/data/siamrec-dev

Each chosen soundtrack gives 24 excerpts of 12 s (16 kHz mono Ogg Vorbis, siamrec's own rate, faded in and
out, cut from the middle of the track): the first 20 form an example playlist, long enough for the paper's
`siamrec bench --mask 15/5` (15 seeds + 5 masked), and the other 4 are left as "new" tracks for siamrec to
place. Every excerpt's source package, path, author and licence is written to SOURCES.tsv, and each
package's Debian copyright file to licences/.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

PLAYLISTS = {  # corpus playlist id -> example playlist name
    "wesnoth": "Orchestral fantasy (Battle for Wesnoth)",
    "aba-games": "Arcade electronica (Kenta Cho)",
    "hedgewars": "Cartoon warfare (Hedgewars)",
    "widelands": "Settlers' saga (Widelands)",
}
PER_PLAYLIST, IN_PLAYLIST = 24, 20
SECONDS, RATE, FADE_S = 12.0, 16_000, 0.5


def excerpt(path: Path) -> np.ndarray:
    """SECONDS of the track's middle, mono, at RATE, with short fades so it loops cleanly."""
    info = sf.info(str(path))
    span = int(SECONDS * info.samplerate)
    start = max(0, info.frames // 2 - span // 2)
    data, rate = sf.read(str(path), start=start, frames=span, dtype="float32", always_2d=True)
    mono = soxr.resample(data.mean(axis=1), rate, RATE)
    fade = np.minimum(1.0, np.minimum(np.arange(mono.size), np.arange(mono.size)[::-1]) / (FADE_S * RATE))
    return (mono * fade).astype(np.float32)


def main(corpus: Path, out: Path) -> None:
    playlists = {
        p["description"].split(":")[0]: p for p in json.loads((corpus / "playlists.json").read_text())["playlists"]
    }
    with open(corpus / "tracks.tsv", newline="") as f:
        rows = {r["track_uri"]: r for r in csv.DictReader(f, delimiter="\t")}
    with open(corpus / "packages.tsv", newline="") as f:
        licences = {r["package"]: r["licence"] for r in csv.DictReader(f, delimiter="\t")}
    shutil.rmtree(out / "audio", ignore_errors=True)
    shutil.rmtree(out / "licences", ignore_errors=True)
    for old in (out / "playlists").glob("*.m3u"):
        old.unlink()
    (out / "playlists").mkdir(parents=True, exist_ok=True)
    (out / "licences").mkdir(exist_ok=True)
    sources = [("file", "title", "artist", "package", "path_in_package", "licence", "in_playlist")]
    for playlist_id, name in PLAYLISTS.items():
        tracks = playlists[playlist_id]["tracks"][:PER_PLAYLIST]
        members = []
        for i, track in enumerate(tracks):
            row = rows[track["track_uri"]]
            target = out / "audio" / playlist_id / f"{Path(row['path']).stem}.ogg"
            target.parent.mkdir(parents=True, exist_ok=True)
            with sf.SoundFile(str(target), "w", RATE, 1, format="OGG", subtype="VORBIS") as handle:
                handle.title, handle.artist, handle.album = track["track_name"], track["artist_name"], name
                handle.write(excerpt(corpus / row["path"]))
            relative = target.relative_to(out)
            in_playlist = i < IN_PLAYLIST
            if in_playlist:
                members.append(f"#EXTINF:{int(SECONDS)},{track['artist_name']} - {track['track_name']}\n../{relative}")
            sources.append(
                (
                    str(relative),
                    track["track_name"],
                    track["artist_name"],
                    row["package"],
                    row["source"],
                    licences[row["package"]],
                    name if in_playlist else "",
                )
            )
            shutil.copy(corpus / "licences" / f"{row['package']}.copyright", out / "licences")
        m3u = out / "playlists" / f"{playlist_id}.m3u"
        m3u.write_text("#EXTM3U\n#PLAYLIST:" + name + "\n" + "\n".join(members) + "\n", encoding="utf-8")
    with open(out / "SOURCES.tsv", "w", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(sources)


if __name__ == "__main__":
    main(Path(sys.argv[1]).expanduser(), Path(__file__).parent)
