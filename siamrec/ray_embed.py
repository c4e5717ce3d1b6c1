"""Embedding across machines: decode + ONNX inference in a Ray Data actor pool, upserts from the driver.

The driver does what only it can do: it skips files the store already holds unchanged (path, size, mtime),
writes those whose bytes a stored track was made from (hashed, not decoded), then hands the rest to Ray as a list
of paths with their files' SHA-1. Each actor loads the ONNX model once and turns a batch of paths
into records and vectors with the very code of the one-process path (`load_item`, `TrackEncoder`), so the
vectors are the same. The driver writes each finished batch with `write_tracks`: batched, idempotent upserts
(point id = uuid5 of the URI) into the embedded store or a Qdrant server, so an interrupted run re-runs and
continues where it stopped. Every worker must see the files at the same paths (a shared mount) and have
`siamrec` installed.

Needs the `ray` extra (`pip install 'siamrec[ray]'`); nothing else imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from siamrec.audio_items import AudioItem, load_item
from siamrec.embed import TrackEncoder
from siamrec.errors import AudioError, ConfigError
from siamrec.library import AddReport, add_known_files, start_add, write_tracks
from siamrec.names import quoted
from siamrec.store import Store, record_payload, track_from_payload

LOCAL = "local"
BATCH_TRACKS = 32  # tracks per Ray task: big enough to amortise the hand-off, small enough to spread the work


class EmbedActor:
    """One Ray actor: the ONNX model loaded once, then batches of paths → records and vectors."""

    def __init__(self, model_path: str, device: str) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.encoder = TrackEncoder(model_path, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records: list[str] = []
        errors: list[str] = []
        windows: list[np.ndarray] = []
        for path, record, overrides, sha1 in zip(
            batch["path"], batch["record"], batch["overrides"], batch["sha1"], strict=True
        ):
            item = AudioItem(
                Path(path), track_from_payload(json.loads(record)) if record else None, json.loads(overrides)
            )
            try:
                loaded, track_windows = load_item(item, str(sha1) or None)
            except AudioError as exc:
                records.append(""), errors.append(str(exc)), windows.append(np.zeros(0, np.float32))
                continue
            except OSError as exc:
                records.append(""), errors.append(f"{quoted(item.path)}: {exc.strerror or exc}")
                windows.append(np.zeros(0, np.float32))
                continue
            records.append(json.dumps(record_payload(loaded))), errors.append(""), windows.append(track_windows)
        good = [i for i, error in enumerate(errors) if not error]
        vectors = np.zeros((len(errors), self.encoder.dim), np.float32)
        if good:
            encoded, problems = self.encoder.try_track_vectors([windows[i] for i in good])
            for i, vector, problem in zip(good, encoded, problems, strict=True):
                if problem:
                    errors[i] = f"{quoted(batch['path'][i])}: {problem}"
                else:
                    vectors[i] = vector
        return {"path": batch["path"], "record": np.array(records, dtype=object),
                "error": np.array(errors, dtype=object), "vector": vectors}  # fmt: skip


def connect(address: str, cpus: int | None = None) -> None:
    """`local`: start a Ray cluster on this machine; anything else is a cluster address (`auto`, `ray://…`)."""
    import ray

    if ray.is_initialized():
        return
    warnings.filterwarnings("ignore", module=r"ray\..*")  # e.g. the client's own timeout warning
    quiet = {"log_to_driver": False, "configure_logging": True, "logging_level": "ERROR"}
    try:
        if address == LOCAL:
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster {address!r}: {str(exc).splitlines()[0]}") from exc


def quiet_ray_data() -> None:
    """Ray Data logs each execution at INFO and draws its own progress bars on stderr: siamrec has its own."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray\..*")


def embedded_batches(
    items: list[tuple[AudioItem, str | None]], model_path: Path, device: str, actors: int,
    batch_size: int = BATCH_TRACKS,
) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """Ray Data: the items' paths (with their files' SHA-1 when hashed), through `actors` EmbedActors, back a
    batch at a time (bounded: streaming)."""
    import ray

    quiet_ray_data()
    rows = [
        {
            "path": str(item.path),
            "record": json.dumps(record_payload(item.record)) if item.record else "",
            "overrides": json.dumps(item.overrides),
            "sha1": sha1 or "",
        }
        for item, sha1 in items
    ]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), actors * 4)))
    dataset = dataset.map_batches(
        EmbedActor,
        fn_constructor_kwargs={"model_path": str(model_path), "device": device},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        num_gpus=1 if device == "cuda" else 0,  # --device cuda: each actor on a GPU of its own
    )
    yield from dataset.iter_batches(batch_size=batch_size, batch_format="numpy")


def add_audio_on_ray(
    store: Store,
    encoder: TrackEncoder,
    items: list[AudioItem],
    on_progress: Callable[[int], None] | None = None,
    *,
    actors: int,
) -> AddReport:
    """`add_audio`, with decoding and inference on Ray; same report, same writes, same skipping."""
    report, items = start_add(store, encoder, items, on_progress)
    # Files whose bytes the store holds are written here, from the stored tracks: Ray gets only the others.
    hashed = add_known_files(store, encoder, items, report, on_progress)
    if not hashed:
        return report
    for batch in embedded_batches(hashed, encoder.path, encoder.device, actors):
        records, vectors = [], []
        for path, record, error, vector in zip(batch["path"], batch["record"], batch["error"], batch["vector"],
                                               strict=True):  # fmt: skip
            if error:
                report.failed.append((str(path), str(error)))
                continue
            stored = track_from_payload(json.loads(record))
            report.uri_by_path[str(path)] = stored.track_uri
            records.append(stored)
            vectors.append(np.asarray(vector, dtype=np.float32))
        if records:
            added, updated = write_tracks(store, records, vectors)
            report.added += added
            report.updated += updated
            report.embedded += len(records)
        if on_progress:
            on_progress(len(batch["path"]))
    return report


def describe() -> dict[str, Any]:
    """What the connected cluster offers (for the CLI's report)."""
    import ray

    resources = ray.cluster_resources()
    return {"nodes": len(ray.nodes()), "cpus": int(resources.get("CPU", 0)), "gpus": int(resources.get("GPU", 0))}
