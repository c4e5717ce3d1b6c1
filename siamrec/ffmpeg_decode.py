"""ffmpeg as a bounded decoder: one container format, one file, a deadline and a cap on what comes out.

ffmpeg is told the demuxer the sniffer found (never left to probe: a probing ffmpeg reads the files and
URLs that a playlist or concat list names), may open nothing but that file (`-protocol_whitelist file`),
is killed when its wall time runs out, and is stopped as soon as it has decoded more than the longest audio
accepted, so neither a lying header nor a stalling input can make it work without bound.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from siamrec import constants as C
from siamrec.errors import AudioError, NotAudioError
from siamrec.sniff import Container

BLOCK_BYTES = C.WINDOW_SAMPLES * 4  # float32 samples: ffmpeg's output is handed on window by window
# A decode gets at least MIN_DEADLINE_S, and as long as the longest accepted audio takes at SLOWEST_SPEED times
# real time (ffmpeg decodes to 16 kHz mono at about 300-500x real time on one core).
MIN_DEADLINE_S = 30.0
SLOWEST_SPEED = 20.0


def deadline_s(max_seconds: float) -> float:
    """The wall time a decode of at most `max_seconds` of audio may take before ffmpeg is killed."""
    return max(MIN_DEADLINE_S, max_seconds / SLOWEST_SPEED)


def _command(path: Path, container: Container) -> list[str]:
    """ffmpeg reading `path` as `container` only, writing its first audio stream as mono 16 kHz float32."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise NotAudioError(f"{container.label} audio needs ffmpeg, which is not installed (apt install ffmpeg)")
    return [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-v", "info", "-protocol_whitelist", "file",
            "-f", container.demuxer, *container.demuxer_options, "-i", f"file:{path}",
            "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", str(C.SAMPLE_RATE), "pipe:1"]  # fmt: skip


@contextmanager
def _killed_after(process: subprocess.Popen[bytes], seconds: float) -> Iterator[threading.Event]:
    """Kill `process` if it still runs after `seconds`; the event says whether that happened."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


def stream_decode(
    path: Path, container: Container, name: str, max_seconds: float, offer: Callable[[np.ndarray], None]
) -> tuple[int, float | None]:
    """Decode `path` through ffmpeg, handing each window-long block of samples to `offer`.

    Returns the samples decoded and the duration the container declares (None when it declares none); once
    more than `max_seconds` are decoded, ffmpeg is stopped and the count returned is over that (the caller
    refuses). Raises NotAudioError when ffmpeg cannot read the file, AudioError past the deadline.
    """
    max_samples = int(max_seconds * C.SAMPLE_RATE)
    samples = 0
    with tempfile.TemporaryFile() as log_file:  # a file, not a pipe: a chatty decoder cannot block ffmpeg
        command = _command(path, container)
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file) as process:
            assert process.stdout is not None
            with _killed_after(process, deadline_s(max_seconds)) as expired:
                while samples <= max_samples and (data := process.stdout.read(BLOCK_BYTES)):
                    block = np.frombuffer(data[: len(data) // 4 * 4], dtype=np.float32)
                    samples += block.size
                    if samples <= max_samples:
                        offer(block.copy())
                if samples > max_samples:
                    process.kill()
                returncode = process.wait()
        log_file.seek(0)
        log = log_file.read().decode(errors="replace")
    if samples > max_samples:
        return samples, None
    if returncode != 0 and expired.is_set():
        raise AudioError(f"{name}: decoding took longer than {deadline_s(max_seconds):g} s; refused")
    if returncode != 0:
        raise _failure(path, name, log)
    return samples, _declared_seconds(log)


def _failure(path: Path, name: str, log: str) -> NotAudioError:
    """ffmpeg's last complaint, without the file's path (a server's layout stays its own)."""
    lines = [line.strip() for line in log.splitlines()]
    complaints = [line for line in lines if any(word in line for word in ("rror", "nvalid", "matches no streams"))]
    reason = (complaints or [line for line in lines if line.startswith("[")] or ["ffmpeg failed"])[-1]
    reason = re.sub(r"^\[\w+ @ 0x[0-9a-f]+\] ", "", reason)  # "[ogg @ 0x55d0…] CRC mismatch!": the demuxer's address
    reason = reason.replace(f"file:{path}: ", "").replace(f"file:{path}", "the file").replace(str(path), "the file")
    return NotAudioError(f"{name}: not an audio file ({reason})")


def _declared_seconds(ffmpeg_log: str) -> float | None:
    """The duration the container declares, from ffmpeg's input summary (`Duration: 01:00:00.00`)."""
    match = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", ffmpeg_log)
    return None if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
