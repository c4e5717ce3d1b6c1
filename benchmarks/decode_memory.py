"""Peak memory of `siamrec add-track` on one very long file in each container siamrec reads.

    python benchmarks/decode_memory.py                       # 4-hour files, all containers, limit 400 MB
    python benchmarks/decode_memory.py --hours 1 --formats m4a,webm

Each file is made with ffmpeg: one minute of 44.1 kHz stereo audio (a chord over noise and a beat) encoded
once, then repeated by stream copy (`-stream_loop`) to the full length, so making a 4-hour file takes
seconds. `add-track` runs in a fresh process on a fresh SIAMREC_HOME with the shipped model; its peak RSS
comes from wait4() (the largest of the process and the ffmpeg it runs). A whole-file decode of four hours
at 16 kHz alone would take 920 MB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

# container → ffmpeg audio codec options for the one-minute source
CODECS: dict[str, list[str]] = {
    "wav": ["-c:a", "pcm_s16le"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "3"],
    "opus": ["-c:a", "libopus", "-b:a", "96k"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "160k"],
    "m4a": ["-c:a", "aac", "-b:a", "128k"],
    "webm": ["-c:a", "libopus", "-b:a", "96k"],
}
SOURCE = (
    "sine=f=220:r=44100,volume=0.3[a];sine=f=277:r=44100,volume=0.2[b];anoisesrc=r=44100:a=0.05[c];"
    "[a][b][c]amix=inputs=3,pan=stereo|c0=c0|c1=c0[out]"
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def make_long_file(folder: Path, container: str, hours: float) -> Path:
    """One encoded minute repeated by stream copy; FLAC is encoded from the long WAV instead (a copied FLAC
    keeps the first minute's STREAMINFO and seek table, so it would declare one minute)."""
    if container == "flac":
        wav = make_long_file(folder, "wav", hours)
        ffmpeg("-i", str(wav), *CODECS["flac"], str(folder / "long.flac"))
        wav.unlink()
        return folder / "long.flac"
    minute = folder / f"minute.{container}"
    ffmpeg("-filter_complex", SOURCE, "-map", "[out]", "-t", "60", *CODECS[container], str(minute))
    long = folder / f"long.{container}"
    loops = max(0, round(hours * 60) - 1)
    ffmpeg("-stream_loop", str(loops), "-i", str(minute), "-map", "0:a", "-c", "copy", str(long))
    minute.unlink()
    return long


def peak_rss_of_add_track(path: Path, home: Path) -> tuple[int, float, int, str]:
    """(peak RSS in bytes, wall seconds, exit status, stderr) of `siamrec add-track PATH`."""
    env = {**os.environ, "SIAMREC_HOME": str(home)}
    env.pop("SIAMREC_MODEL", None)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "siamrec", "add-track", "--json", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, time.perf_counter() - start, process.returncode, stderr


def probe_seconds(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


@click.command()
@click.option("--hours", default=4.0, show_default=True, help="Length of each test file.")
@click.option("--formats", default=",".join(CODECS), show_default=True, help="Containers to measure.")
@click.option("--limit-mb", default=400, show_default=True, help="Peak RSS each run must stay under.")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where to write the files (default: a temp dir).")
def main(hours: float, formats: str, limit_mb: int, workdir: Path | None) -> None:
    if shutil.which("ffmpeg") is None:
        raise click.ClickException("ffmpeg is needed to make the test files")
    console = Console()
    table = Table(
        "container", "file", "length", "peak RSS", "add-track", "result", title=f"add-track on {hours:g} h files"
    )
    failures = 0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for container in formats.split(","):
            folder = Path(tmp) / container
            folder.mkdir()
            path = make_long_file(folder, container, hours)
            size_mb = path.stat().st_size / 1e6
            seconds = probe_seconds(path)
            rss, wall, status, stderr = peak_rss_of_add_track(path, folder / "home")
            ok = status == 0 and rss < limit_mb * 1e6
            failures += not ok
            reason = [line for line in stderr.splitlines() if line.startswith(("siamrec:", "skipped:"))]
            result = "ok" if ok else f"FAIL (exit {status}) {reason[-1] if reason else stderr.strip()[-200:]}"
            table.add_row(
                container,
                f"{size_mb:,.0f} MB",
                f"{seconds / 3600:.2f} h",
                f"{rss / 1e6:,.0f} MB",
                f"{wall:.1f} s",
                result,
            )
            console.print(f"{container}: peak {rss / 1e6:,.0f} MB in {wall:.1f} s ({'ok' if ok else 'FAIL'})")
            path.unlink()
    console.print(table)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
