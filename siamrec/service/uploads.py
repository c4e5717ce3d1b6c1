"""Audio coming in over HTTP: uploads and fetched URLs land in the uploads folder, named by their SHA-1,
and are let through only if their bytes are audio (sniffed from content, never from a name) whose decoded
length is within the service's limit (a header's claim is not trusted: it can say seconds for hours).

URL fetching is off unless enabled; then every address a host resolves to must be public (or in a network the
operator listed), the connection goes to the address that was checked (no DNS rebinding), and each redirect
is checked again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import numpy as np

from siamrec.audio import AudioInfo, track_windows
from siamrec.deadline import deadline
from siamrec.errors import ConnectorError, NotAudioError
from siamrec.service.problems import FetchRefused, TooLarge
from siamrec.sniff import READABLE, sniff

COPY_BLOCK = 1 << 20
MAX_REDIRECTS = 3
FETCH_TIMEOUT_S = 30.0  # the most one read may wait
FETCH_DEADLINE_S = 60.0  # a whole fetch, redirects included: a trickling server is cut off
UPLOAD_NAME = "the upload"  # what messages call it: the client never learns where the server keeps it


@dataclass(frozen=True)
class ReceivedUpload:
    """Bytes received into a temporary file of the uploads folder, their SHA-1 and sniffed container's suffix:
    enough to find audio the store already holds before anything decodes them."""

    temporary: Path
    sha1: str
    suffix: str


def receive_audio(chunks: Iterable[bytes], folder: Path, max_bytes: int) -> ReceivedUpload:
    """Write the bytes to a temporary file while hashing them, then sniff them (content, never a name); too many
    bytes or bytes that are not audio are refused and leave nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1()
    size = 0
    handle, name = tempfile.mkstemp(prefix=".incoming-", dir=folder)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the audio is larger than this service accepts ({max_bytes / 1e6:g} MB)")
                digest.update(chunk)
                out.write(chunk)
        container = sniff(temporary)
        if container is None:
            raise NotAudioError(f"{UPLOAD_NAME} is not audio this service reads ({READABLE})")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return ReceivedUpload(temporary, digest.hexdigest(), container.suffix)


def keep_upload(received: ReceivedUpload, folder: Path) -> tuple[Path, bool]:
    """The upload under `folder/<sha1><suffix>`, and whether it is new (the same bytes twice are one file)."""
    final = folder / f"{received.sha1}{received.suffix}"
    new = not final.exists()
    received.temporary.replace(final)
    return final, new


def decode_upload(path: Path, max_duration_s: float) -> tuple[np.ndarray, AudioInfo]:
    """The model windows of a kept upload, as add-track decodes a file (the sniffed container only, nothing the
    bytes name), refused past `max_duration_s` of decoded audio (a header's claim is not trusted)."""
    return track_windows(path, max_seconds=max_duration_s, name=UPLOAD_NAME)


def file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    yield from iter(lambda: handle.read(COPY_BLOCK), b"")


# ---- fetching URLs ------------------------------------------------------------------------------------


def _allowed(address: str, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if any(ip in network for network in trusted):
        return True
    return ip.is_global and not ip.is_multicast


def checked_address(url: str, trusted_networks: Iterable[str]) -> tuple[str, str, int]:
    """(scheme, address to connect to, port) for a URL whose host resolves only to allowed addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused(f"only http and https URLs can be fetched, not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectorError(f"cannot resolve {parts.hostname!r}: {exc.strerror}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    trusted = [ipaddress.ip_network(n, strict=False) for n in trusted_networks]
    refused = [a for a in addresses if not _allowed(a, trusted)]
    if refused or not addresses:
        raise FetchRefused(
            f"{parts.hostname} resolves to {', '.join(refused) or 'nothing'}: loopback, private and reserved "
            "addresses are never fetched"
        )
    return parts.scheme, addresses[0], port


def fetch_chunks(url: str, trusted_networks: Iterable[str], deadline_s: float = FETCH_DEADLINE_S) -> Iterator[bytes]:
    """Stream a URL's body from the checked address (TLS still verified against the host name), all of it
    (redirects included) within `deadline_s`: a server that trickles bytes is cut off when it passes."""
    import httpx

    trusted = tuple(trusted_networks)
    timeout = httpx.Timeout(min(FETCH_TIMEOUT_S, deadline_s))
    with deadline(deadline_s, "the fetch") as clock, httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:

        def watch_sockets(event: str, info: dict) -> None:
            """httpcore's trace: each new connection's socket is shut down when the deadline passes."""
            if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
                sock = info["return_value"].get_extra_info("socket")
                if sock is not None:
                    clock.watch(sock)

        for _ in range(MAX_REDIRECTS + 1):
            scheme, address, port = checked_address(url, trusted)
            parts = urlsplit(url)
            host = f"[{address}]" if ":" in address else address
            pinned = parts._replace(netloc=f"{host}:{port}").geturl()
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "audio/*, */*"}
            extensions: dict = {"trace": watch_sockets}
            if scheme == "https":
                extensions["sni_hostname"] = parts.hostname
            try:
                with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise ConnectorError(f"{url} answered HTTP {response.status_code}")
                    yield from response.iter_bytes(COPY_BLOCK)
                    return
            except httpx.HTTPError as exc:
                raise ConnectorError(f"cannot fetch {url}: {exc}") from exc
    raise ConnectorError(f"{url}: more than {MAX_REDIRECTS} redirects")
