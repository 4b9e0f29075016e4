"""Small HTTP servers in a thread of their own: a worker's /metrics, /healthz and /readyz, and the
dashboard. Standard library only (``http.server``); they answer even while the worker's event
loop is busy or stuck, which is what /healthz is for."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("pipeline.http")

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[str], Response]  # query string -> response
PostRoute = Callable[[bytes, dict[str, str]], Response]  # body, headers (lower-case names) -> response
MAX_POST_BYTES = 64 * 1024
#: what a page served here may load and talk to: itself only, never a frame of another site
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

TEXT = "text/plain; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once: one more is answered 503 and
    closed at once, so half-open or slow clients cannot take every thread (or all memory)."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # the listen backlog: connections beyond it wait for SYN retries

    def __init__(self, address, handler, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0  # connections turned away because all slots were taken
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler(routes: dict[str, Route], read_timeout_s: float,
             post_routes: dict[str, PostRoute] | None = None) -> type[BaseHTTPRequestHandler]:
    post_routes = post_routes or {}

    class Handler(BaseHTTPRequestHandler):
        server_version = "news-pipeline"
        timeout = read_timeout_s  # per read: a half-sent request ends the connection after this long

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            route = routes.get(path)
            if route is None:
                status, ctype, body = 404, TEXT, f"not found: {path}; try {', '.join(sorted(routes))}\n".encode()
            else:
                try:
                    status, ctype, body = route(query)
                except Exception as exc:  # noqa: BLE001 - one failed request must not stop the server
                    log.exception("HTTP %s failed", path)
                    status, ctype, body = 500, TEXT, f"error: {exc}\n".encode()
            self._answer(status, ctype, body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.partition("?")[0]
            route = post_routes.get(path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if route is None:
                status, ctype, body = 404, TEXT, f"not found: POST {path}\n".encode()
            elif not 0 <= length <= MAX_POST_BYTES:
                status, ctype, body = 413, TEXT, f"a body of at most {MAX_POST_BYTES} bytes, with its length\n".encode()
            else:
                try:
                    data = self.rfile.read(length)
                    status, ctype, body = route(data, {k.lower(): v for k, v in self.headers.items()})
                except Exception as exc:  # noqa: BLE001 - one failed request must not stop the server
                    log.exception("HTTP POST %s failed", path)
                    status, ctype, body = 500, TEXT, f"error: {exc}\n".encode()
            self._answer(status, ctype, body)

        def _answer(self, status: int, ctype: str, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                if ctype.startswith("text/html"):  # the pages show untrusted text: nothing but this origin
                    self.send_header("Content-Security-Policy", CSP)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class HttpServer:
    """Serve ``routes`` (GET) and ``post_routes`` (POST, a body of at most ``MAX_POST_BYTES``) on
    ``host:port`` from a daemon thread. Port 0: any free port; with
    ``fallback`` a taken port is replaced by a free one (the caller reads :attr:`port`). A
    connection that sends nothing for ``read_timeout_s`` is closed; at most ``max_connections``
    are served at once."""

    def __init__(self, host: str, port: int, routes: dict[str, Route], name: str = "http", fallback: bool = False,
                 read_timeout_s: float = 10.0, max_connections: int = 32,
                 post_routes: dict[str, PostRoute] | None = None):
        handler = _handler(routes, read_timeout_s, post_routes)
        try:
            self.server = _Server((host, port), handler, max_connections)
        except OSError as exc:
            if not (fallback and exc.errno == errno.EADDRINUSE):
                raise OSError(exc.errno, f"cannot listen on {host}:{port} for {name}: {exc.strerror}") from None
            log.warning("port %d is taken; %s listens on a free port instead", port, name)
            self.server = _Server((host, 0), handler, max_connections)
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
