"""`siamrec serve`: the HTTP API over the same store and model as the other commands."""

from __future__ import annotations

import os

import click

from siamrec.cli.common import Settings, store_options
from siamrec.constants import METRICS
from siamrec.errors import ConfigError


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; off-loopback needs SIAMREC_API_KEY."
)
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Service processes; more than one needs --qdrant-url (the embedded store allows one).",
)
@click.option("--max-upload-mb", default=200.0, show_default=True, type=click.FloatRange(0.001))
@click.option(
    "--max-duration-s", default=3600.0, show_default=True, type=click.FloatRange(1), help="Longest audio accepted."
)
@click.option(
    "--queue-limit",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Uploads handled at once; the next one is answered 503 + Retry-After.",
)
@click.option(
    "--body-timeout-s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Time a request body has to arrive, plus 1 s per 32 kB received; slower clients are answered 408.",
)
@click.option(
    "--fetch-deadline-s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Time a URL fetch (--allow-fetch) has to finish, redirects included; a slower server is cut off.",
)
@click.option("--embed-threads", default=1, show_default=True, type=click.IntRange(1), help="Decode/inference threads.")
@click.option(
    "--allow-fetch", is_flag=True, help="Let POST /tracks name a URL for the service to fetch (public hosts only)."
)
@click.option(
    "--fetch-allow-network",
    multiple=True,
    metavar="CIDR",
    help="A private network to trust for fetching anyway (e.g. your media server's); repeatable.",
)
@click.option(
    "--cors-origin", multiple=True, metavar="ORIGIN", help="Allow browser calls from this origin; repeatable."
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="auto",
    show_default=True,
    help="Rank with plain vectors, the adapted ones of `siamrec adapt`, or adapted when the store has them.",
)
@store_options
def serve(
    host: str,
    port: int,
    workers: int,
    max_upload_mb: float,
    max_duration_s: float,
    queue_limit: int,
    body_timeout_s: float,
    fetch_deadline_s: float,
    embed_threads: int,
    allow_fetch: bool,
    fetch_allow_network: tuple[str, ...],
    cors_origin: tuple[str, ...],
    metric: str,
    settings: Settings,
) -> None:
    """Serve the recommender over HTTP (OpenAPI docs at /docs)."""
    from siamrec.service.config import API_KEY_ENV, CONFIG_ENV, QDRANT_API_KEY_ENV, ServiceConfig

    if workers > 1 and settings.qdrant_url is None:
        raise ConfigError("--workers > 1 needs --qdrant-url: the embedded store can be opened by one process only")
    config = ServiceConfig(
        settings,
        host=host,
        max_upload_bytes=int(max_upload_mb * 1e6),
        max_duration_s=max_duration_s,
        queue_limit=queue_limit,
        embed_threads=embed_threads,
        allow_fetch=allow_fetch,
        fetch_allow_networks=fetch_allow_network,
        cors_origins=cors_origin,
        metric=metric,
        api_key=os.environ.get(API_KEY_ENV),
        body_timeout_s=body_timeout_s,
        fetch_deadline_s=fetch_deadline_s,
    ).checked()
    import uvicorn  # missing: `main` names the extra in one line (EXTRA_OF_PACKAGE)
    from uvicorn.supervisors import Multiprocess

    from siamrec.service.app import create_app
    from siamrec.service.server import ServerConfig, listening_socket, served_url
    from siamrec.service.state import Service

    sock = listening_socket(host, port)  # bound before anything is announced: a port in use is one line
    try:
        service = Service(config)  # model and store checked here: a bad one is one line, not a worker traceback
    except BaseException:
        sock.close()
        raise
    click.echo(f"siamrec: serving {served_url(host, sock)} ({service.metric} metric; docs at /docs)", err=True)
    if workers == 1:
        uvicorn.Server(ServerConfig(create_app(config, service), config, log_level="info")).run(sockets=[sock])
        return
    service.close()
    os.environ[CONFIG_ENV] = config.to_environment()  # the workers rebuild these settings, never resolve anew
    if settings.qdrant_api_key:  # a --qdrant-api-key flag reaches the workers as their environment, not as JSON
        os.environ[QDRANT_API_KEY_ENV] = settings.qdrant_api_key
    app = "siamrec.service.app:app_from_environment"
    Multiprocess(ServerConfig(app, config, factory=True, workers=workers), sockets=[sock]).run()
