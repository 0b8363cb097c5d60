"""A local Hugging-Face-like HTTP server on 127.0.0.1 for download tests (never the internet)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "Blaze-UESTC/GTASR"


@dataclass
class LocalHub:
    """Files served as ``/{repo}/resolve/main/{file}`` with the headers ``hf_hub_download`` reads.

    ``files`` maps URL path -> the bytes served by successive GETs (the last one repeats), so a test can
    serve a corrupt file first; ``drop_first_get`` closes the first GET after half the body (a dropped
    connection); ``gets`` counts GET requests per path; ``ranges`` records Range headers.
    """

    url: str = ""
    files: dict[str, list[bytes]] = field(default_factory=dict)
    drop_first_get: set[str] = field(default_factory=set)
    gets: Counter = field(default_factory=Counter)
    ranges: list[str] = field(default_factory=list)

    def put(self, repo_id: str, filename: str, *versions: bytes) -> None:
        self.files[f"/{repo_id}/resolve/main/{filename}"] = list(versions)

    def current(self, path: str) -> bytes | None:
        versions = self.files.get(path)
        if not versions:
            return None
        return versions[min(self.gets[path], len(versions) - 1)]


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _headers(self, data: bytes, status: int = 200, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()

        def _missing(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self) -> None:
            data = hub.current(self.path)
            if data is None:
                return self._missing()
            self._headers(data, extra={"Content-Length": str(len(data))})

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            if rng:  # a resumed request continues the version of the GET it resumes
                hub.ranges.append(rng)
                versions = hub.files[self.path]
                data = versions[min(hub.gets[self.path], len(versions)) - 1]
                start = int(rng.removeprefix("bytes=").split("-")[0])
            else:
                data = hub.current(self.path)
                if data is None:
                    return self._missing()
                hub.gets[self.path] += 1
                start = 0
            body = data[start:]
            extra = {"Content-Length": str(len(body))}
            if start:
                extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._headers(data, 206 if start else 200, extra)
            if not rng and self.path in hub.drop_first_get and hub.gets[self.path] == 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the client sees a truncated body
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_hub() -> Iterator[LocalHub]:
    """A :class:`LocalHub` served on a free loopback port for the duration of the block."""
    state = LocalHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
