"""`--ray` and `--ray-actors`, shared by add-track and sync-playlists: options, connecting, the embed function."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from siamrec.library import AddFunction, add_audio

F = TypeVar("F", bound=Callable[..., Any])


def ray_options(func: F) -> F:
    func = click.option("--ray-actors", type=click.IntRange(1), help="Embedding actors on Ray [default: one per CPU].")(
        func
    )
    return click.option(  # type: ignore[no-any-return]
        "--ray",
        metavar="ADDRESS",
        help="Decode and embed on Ray (needs siamrec[ray]): 'local' starts a cluster on this machine; 'auto' or "
        "ray://HOST:10001 joins one. Workers must see the files at the same paths.",
    )(func)


@contextmanager
def embedding_on(ray: str | None, ray_actors: int | None) -> Iterator[tuple[AddFunction, int]]:
    """The add function to embed with (plain `add_audio` without --ray) and its number of Ray actors (0: none).

    With Ray, native stderr is silenced for the whole block: Ray's C++ core logs on fd 2 while it runs, and
    siamrec's own lines (which go to a duplicate of fd 2) still show.
    """
    if ray is None:
        yield add_audio, 0
        return
    from siamrec import ray_embed
    from siamrec.quiet import native_stderr_silenced

    with native_stderr_silenced():
        ray_embed.connect(ray, ray_actors if ray == ray_embed.LOCAL else None)
        actors = ray_actors or max(1, ray_embed.describe()["cpus"])
        yield functools.partial(ray_embed.add_audio_on_ray, actors=actors), actors
