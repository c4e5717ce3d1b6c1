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

T = TypeVar("T")
SERVER_STORE_THREADS = 8


class Service:
    def __init__(self, config: ServiceConfig) -> None:
        settings = config.settings()
        self.config = config
        self.embedded = settings.qdrant_url is None
        self.uploads: Path = settings.home / "uploads"
        self.encoder: TrackEncoder = load_encoder(settings.model_path, settings.device)
        self.store = Store.open(settings)
        try:
            self.store.bind_model(self.encoder.name, self.encoder.dim, create=True)
            self.metric = self.store.use_metric(config.metric)
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

    def close(self) -> None:
        self._work_pool.shutdown(wait=True, cancel_futures=True)
        self._store_pool.shutdown(wait=True)
        self.store.close()
