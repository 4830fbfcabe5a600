"""A loopback HTTP server over a folder, for tests of code that downloads."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    cut: Mapping[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        if name in self.cut:
            body = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: self.cut[name]])
            self.wfile.flush()
            self.close_connection = True  # the server "dies" mid-download
            return
        super().do_GET()

    def send_head(self):  # type: ignore[no-untyped-def]
        # Serve a folder's index.json as the PEP 691 JSON page for that folder.
        folder = Path(self.translate_path(self.path))
        if self.path.endswith("/") and (folder / "index.json").is_file():
            body = (folder / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            import io

            return io.BytesIO(body)
        return super().send_head()


@contextmanager
def serve(root: Path, *, cut: Mapping[str, int] | None = None) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (a free port); yield the base URL (without a trailing `/`).

    `cut`: file names (relative to `root`) sent with their full Content-Length but only that many bytes, then the
    connection is closed. Read at each request, so a caller may change it while serving."""

    class Handler(_QuietHandler):
        pass

    Handler.cut = {} if cut is None else cut
    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
