"""Title, artist and album from a file's tags (mutagen), falling back to the file name."""

from __future__ import annotations

from pathlib import Path

import mutagen

from siamrec.names import name_text


def read_tags(path: Path) -> dict[str, str]:
    """{"title", "artist", "album"}; unreadable or missing tags are not an error (the audio decides that)."""
    tags: dict[str, str] = {"title": name_text(path.stem), "artist": "", "album": ""}
    try:
        audio = mutagen.File(str(path), easy=True)
    except (mutagen.MutagenError, OSError, ValueError):
        return tags
    if audio is None or audio.tags is None:
        return tags
    for key in tags:
        values = audio.tags.get(key)
        if values:
            tags[key] = str(values[0])
    return tags
