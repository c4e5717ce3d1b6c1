"""Which audio container a file's bytes are, from its first bytes alone, never from its name.

Decoders are told this one format and never guess: an auto-probing ffmpeg turns a few hundred bytes of
playlist, concat list or image-sequence pattern into reads of other files or URLs that the bytes name. So a
file is placed only when it opens like one of a short list of audio containers whose demuxers read nothing
but the file itself; anything else is refused, however a header further on looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# ID3v2 tags (MP3, AAC and FLAC files may open with them) are skipped, a few at most, then sniffing starts over.
MAX_ID3_TAGS = 4
PROBE_BYTES = 8192


@dataclass(frozen=True)
class Container:
    """An audio container: ffmpeg's demuxer for it, the suffix a saved copy gets, libsndfile's names for it."""

    demuxer: str
    suffix: str
    soundfile_formats: frozenset[str] = frozenset()  # empty: libsndfile does not read it, ffmpeg decodes it
    demuxer_options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.suffix.lstrip(".")


WAV = Container("wav", ".wav", frozenset({"WAV", "WAVEX", "RF64"}))
AIFF = Container("aiff", ".aiff", frozenset({"AIFF"}))
FLAC = Container("flac", ".flac", frozenset({"FLAC"}))
OGG = Container("ogg", ".ogg", frozenset({"OGG"}))
OPUS = Container("ogg", ".opus", frozenset({"OGG"}))
MP3 = Container("mp3", ".mp3", frozenset({"MP3"}))
AAC = Container("aac", ".aac")
# mov's data references (`dref` atoms naming other files) stay off, as they are by default: said for the reader.
MP4 = Container("mov", ".m4a", demuxer_options=("-enable_drefs", "0"))
MATROSKA = Container("matroska", ".webm")
ASF = Container("asf", ".wma")
CONTAINERS = (WAV, AIFF, FLAC, OGG, OPUS, MP3, AAC, MP4, MATROSKA, ASF)
READABLE = "wav, aiff, flac, ogg, opus, mp3, aac, m4a/mp4, webm/mka, wma"

ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# MPEG audio bit rates in kbit/s by (MPEG-1?, layer) and the bit-rate index 1-14.
MPEG_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MPEG1_RATES = (44100, 48000, 32000)


def sniff(path: Path) -> Container | None:
    """The container `path`'s bytes open with, or None when they open like none of CONTAINERS."""
    with open(path, "rb") as handle:
        start = _id3_end(handle)
        handle.seek(start)
        head = handle.read(PROBE_BYTES)
    if start:
        return _tagged_stream(head.lstrip(b"\0"))  # tag padding that some taggers leave outside the tag
    return _container_of(head)


def _id3_end(handle: BinaryIO) -> int:
    """Where the bytes after any ID3v2 tags start (0 when the file opens with none)."""
    position = 0
    for _ in range(MAX_ID3_TAGS):
        handle.seek(position)
        header = handle.read(10)
        if len(header) < 10 or header[:3] != b"ID3" or any(byte & 0x80 for byte in header[6:10]):
            break
        size = header[6] << 21 | header[7] << 14 | header[8] << 7 | header[9]  # "syncsafe": 7 bits a byte
        position += 10 + size + (10 if header[5] & 0x10 else 0)  # a footer repeats the header
    return position


def _tagged_stream(head: bytes) -> Container | None:
    """What may follow ID3 tags: FLAC, or a stream of MPEG audio or ADTS frames."""
    if head.startswith(b"fLaC"):
        return FLAC
    return _frame_stream(head)


def _container_of(head: bytes) -> Container | None:
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AIFF
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"OggS\0"):
        return OPUS if head[28:36] == b"OpusHead" else OGG
    if head[4:8] == b"ftyp":
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MATROSKA
    if head.startswith(ASF_GUID):
        return ASF
    return _frame_stream(head)


def _frame_stream(head: bytes) -> Container | None:
    """MP3 or ADTS AAC: a valid frame header at the start and, when the probe holds it, another one right after."""
    for container, frame_length in ((MP3, _mpeg_frame_length), (AAC, _adts_frame_length)):
        length = frame_length(head)
        if length is None:
            continue
        following = head[length:]
        if len(following) < 7 or frame_length(following) is not None:
            return container
    return None


def _mpeg_frame_length(data: bytes) -> int | None:
    """The length of the MPEG audio frame `data` opens with (None when it does not open with a valid one)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = data[1] >> 3 & 3, data[1] >> 1 & 3
    bitrate_index, rate_index, padding = data[2] >> 4, data[2] >> 2 & 3, data[2] >> 1 & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1, layer = version == 3, 4 - layer_bits
    rate = MPEG1_RATES[rate_index] // (1 if mpeg1 else 2 if version == 2 else 4)
    bits_per_second = MPEG_KBPS[(mpeg1, layer)][bitrate_index - 1] * 1000
    if layer == 1:
        return (12 * bits_per_second // rate + padding) * 4
    samples_per_byte = 144 if layer == 2 or mpeg1 else 72
    return samples_per_byte * bits_per_second // rate + padding


def _adts_frame_length(data: bytes) -> int | None:
    """The length of the ADTS (AAC) frame `data` opens with (None when it does not open with a valid one)."""
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xF6 != 0xF0 or data[2] >> 2 & 0xF > 12:
        return None
    length = (data[3] & 3) << 11 | data[4] << 3 | data[5] >> 5
    header = 7 if data[1] & 1 else 9
    return length if length > header else None
