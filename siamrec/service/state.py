"""What one service process owns: the encoder, the store, and the two thread pools work runs in.

The embedded store allows one client per process, so every store call goes through one thread (which also
keeps the local client single-threaded); with a Qdrant server the store pool has several threads. Decoding
and ONNX inference run in a separate bounded pool, so a recommendation never waits behind an upload's
inference, and the event loop never runs either.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from siamrec.embed import TrackEncoder, load_encoder
from siamrec.service.config import ServiceConfig
from siamrec.store import Store
from siamrec.store.warmup import warm_store

T = TypeVar("T")
SERVER_STORE_THREADS = 8


class Service:
    def __init__(self, config: ServiceConfig) -> None:
        settings = config.settings
        self.config = config
        self.embedded = settings.qdrant_url is None
        self.uploads: Path = (settings.home / "uploads").resolve()
        self.private_folders = _private_folders(self.uploads, settings.home, settings.model_path)
        self.encoder: TrackEncoder = load_encoder(settings.model_path, settings.device)
        self.store = Store.open(settings)
        try:
            self.store.bind_model(self.encoder.name, self.encoder.dim, create=True)
            self.metric = self.store.use_metric(config.metric)
            self.warming = warm_store(self.store)  # the first requests find the store in memory (store.warmup)
        except BaseException:
            self.store.close()
            raise
        self._store_pool = ThreadPoolExecutor(1 if self.embedded else SERVER_STORE_THREADS, "siamrec-store")
        self._work_pool = ThreadPoolExecutor(config.embed_threads, "siamrec-embed")

    async def in_store(self, func: Callable[..., T], *args: object) -> T:
        """Run a store-bound call in the store pool."""
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, functools.partial(func, *args))

    async def in_work(self, func: Callable[..., T], *args: object) -> T:
        """Run decoding/inference in the bounded work pool (uploads are admitted by the UploadGate first)."""
        return await asyncio.get_running_loop().run_in_executor(self._work_pool, functools.partial(func, *args))

    def upload_of(self, path: str | None) -> Path | None:
        """The file in the uploads folder a track was embedded from (None for a track from anywhere else)."""
        if path is None:
            return None
        candidate = Path(path)
        return candidate if candidate.parent == self.uploads else None

    def close(self) -> None:
        self._work_pool.shutdown(wait=True, cancel_futures=True)
        self._store_pool.shutdown(wait=True)
        self.store.close()


def _private_folders(uploads: Path, home: Path, model: Path | None) -> tuple[tuple[str, str], ...]:
    """The folders whose names problem details replace with what they are (each as given and resolved)."""
    named = [(uploads, "the upload"), (home, "the service's data folder"), (Path.home(), "a server folder")]
    if model is not None:
        named.append((model, "the model"))
    spellings = {(str(spelling), label) for folder, label in named for spelling in (folder, folder.resolve())}
    return tuple((folder, label) for folder, label in spellings if folder.strip("/"))  # never "/" itself
