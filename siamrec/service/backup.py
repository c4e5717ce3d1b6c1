"""`POST /store/backup`: a running service holds the embedded store's lock, so it makes the backup itself.

The backup is written in the service's one store thread (no write can interleave, so it is consistent) to a
temporary file in the data folder, sent as the response body, and removed once sent. `siamrec store backup
--service URL` asks for it and checks the whole file before keeping it.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from siamrec.errors import ConfigError, StoreError
from siamrec.logs import get_logger
from siamrec.service.problems import error_responses
from siamrec.store.backup import SERVICE_ROUTE, SUFFIX, write_backup

log = get_logger(__name__)
MEDIA_TYPE = "application/gzip"


def add_backup_route(app: FastAPI) -> None:
    @app.post(
        SERVICE_ROUTE,
        tags=["store"],
        summary="A consistent backup of the embedded store (`siamrec store restore` reads it)",
        response_class=FileResponse,
        responses={200: {"content": {MEDIA_TYPE: {}}}, **error_responses(400, 401, 503)},
    )
    async def store_backup(request: Request) -> FileResponse:
        service = request.app.state.service
        if not service.embedded:
            raise ConfigError("this service uses a Qdrant server: back it up with Qdrant's snapshots")
        home = service.config.settings.home
        target = home / "backups" / f".serving-{uuid.uuid4().hex}{SUFFIX}"
        try:
            await service.in_store(write_backup, service.store.backend, target)
        except StoreError as exc:  # the message names the server's folders: the log gets it, the client does not
            log.error("backup failed: %s", exc)
            raise StoreError("the service could not write a backup (see its log): try again later") from None
        return FileResponse(
            target,
            media_type=MEDIA_TYPE,
            filename="store" + SUFFIX,
            background=BackgroundTask(target.unlink, missing_ok=True),
        )
