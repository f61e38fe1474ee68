"""``--serve [HOST:]PORT``: the live view over HTTP, with the standard library only.

Routes (all GET unless noted; nothing else, and no file is ever read from disk by path):

- ``/``: the page (one self-contained HTML file shipped inside the package);
- ``/stream.mjpg``: ``multipart/x-mixed-replace`` JPEGs, capped at the stream frame rate;
- ``/api/state``: the latest label, probabilities, frame index, FPS and latencies, capture;
- ``/api/summary``: the run's summary so far, the one the CLI prints at exit;
- ``POST /api/capture``: ``{"label": N, "count": K}`` starts a capture burst.

Why ``http.server.ThreadingHTTPServer``: it ships with Python, so a Pi install stays pip-light,
and a thread per client is what an MJPEG stream wants (each client blocks in its own ``send``).
Threads are bounded (:data:`MAX_CLIENTS`), sockets time out (a stalled or half-open client is
dropped) and every client shares one JPEG, so viewers never slow the inference loop.

Access: on loopback no token is needed, but the Host header must name loopback (a web page
cannot reach the server through DNS rebinding). On any other address a random token is made at
start and every request needs it (``?token=`` or an ``X-Token`` header); capture also needs POST
with a JSON body, which a cross-site form cannot send.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import ipaddress
import json
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from runtime.capture import CaptureBusy, CaptureError
from runtime.errors import SignsError
from runtime.live import LiveView, json_safe

DEFAULT_HOST = "127.0.0.1"
MAX_CLIENTS = 64  # concurrent connections; more get 503 (each one is a thread)
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing (half-open) is dropped after this
SEND_TIMEOUT_S = 5.0  # a stream client that stops reading is dropped after this
SEND_BUFFER = 128 * 1024  # bytes of kernel buffer per stream client: a few JPEGs
MAX_BODY = 1024  # bytes: a capture request is ~30
BOUNDARY = "signs-edge-frame"
PAGE = "page.html"


def parse_serve(value: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:8000`` for IPv6) -> (host, port).

    Raises:
        SignsError: not a port number 0-65535, or an empty host.
    """
    host, sep, port_s = value.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (sep and not host):
        raise SignsError(f"--serve {value}: expected [HOST:]PORT, e.g. 8000 or 0.0.0.0:8000")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _lan_address() -> str:
    """This machine's address on its default route (no packet is sent), else its hostname."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    return socket.gethostname()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up shutdown
    # socketserver's default listen backlog is 5: a burst of viewers (a browser opens several
    # connections) would wait on SYN retries. Let the whole limit queue; the excess gets 503.
    request_queue_size = 2 * MAX_CLIENTS
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], live: LiveView, token: str | None) -> None:
        self.live = live
        self.token = token
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that vanished is not news; a bug shows in the tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "signs-edge"
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        pass  # the terminal belongs to the run's own output

    # --- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self._authorised()
        if path is None:
            return
        live = self.server.live
        if path == "/":
            self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
        elif path == "/stream.mjpg":
            self._stream(live)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, live.state())
        elif path == "/api/summary":
            self._json(HTTPStatus.OK, json_safe(live.summary()))
        elif path == "/api/capture":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"}, allow="POST")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = self._authorised()
        if path is None:
            return
        if path != "/api/capture":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        capturer = self.server.live.capturer
        if capturer is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "capture is not available in this run"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"body must be 1-{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
            capturer.start(body.get("label"), body.get("count"))
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"not a JSON object: {exc}"})
        except CaptureError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except CaptureBusy as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
        else:
            self._json(HTTPStatus.ACCEPTED, capturer.status().to_dict())

    # --- access ----------------------------------------------------------------------------

    def _authorised(self) -> str | None:
        """The request's path if it may proceed; otherwise a 403 has been sent."""
        url = urlsplit(self.path)
        token = self.server.token
        if token is None:
            if not is_loopback(_host_name(self.headers.get("Host") or "")):
                self._json(HTTPStatus.FORBIDDEN, {"error": "loopback server: use 127.0.0.1"})
                return None
            return url.path
        given = parse_qs(url.query).get("token", [""])[0] or self.headers.get("X-Token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            self._json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong token"})
            return None
        return url.path

    # --- responses -------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers.items():
            self.send_header(k.replace("_", "-").title(), v)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, obj: object, **headers: str) -> None:
        body = json.dumps(obj, allow_nan=False).encode()
        self._send(status, body, "application/json", **headers)

    def _stream(self, live: LiveView) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.connection.settimeout(SEND_TIMEOUT_S)
        # A small send buffer: a stalled client blocks (then times out) after a few frames
        # instead of after megabytes of kernel memory.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ".encode()
        frames = live.stream()
        try:
            for jpeg in frames:
                if not jpeg:
                    continue  # no new frame yet (the loop may have ended): keep the last one
                self.wfile.write(head + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError:
            pass  # the client went away (reset, broken pipe) or stalled past SEND_TIMEOUT_S
        finally:
            frames.close()
        self.close_connection = True


def _host_name(header: str) -> str:
    """The name in a Host header: ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> localhost."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


_page_cache: bytes | None = None


def _page() -> bytes:
    global _page_cache
    if _page_cache is None:
        _page_cache = resources.files("runtime").joinpath(PAGE).read_bytes()
    return _page_cache


class WebServer:
    """The HTTP server around a :class:`LiveView`, serving from a background thread.

    Args:
        live: what to serve.
        host: address to bind; anything but loopback gets a token.
        port: TCP port; 0 picks a free one (tests).
        token: override the token (None: generated unless on loopback).

    Raises:
        SignsError: the port is in use or the address cannot be bound (exit code 2).
    """

    def __init__(
        self, live: LiveView, host: str = DEFAULT_HOST, port: int = 8000, token=...
    ) -> None:
        if token is ...:
            token = None if is_loopback(host) else secrets.token_urlsafe(16)
        self.host = host
        self.token = token
        where = f"{host}:{port}"
        try:
            self.httpd = _Server((host, port), live, token)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SignsError(f"--serve {where}: port {port} is already in use") from None
            raise SignsError(f"--serve {where}: cannot listen ({exc.strerror or exc})") from None
        self.port = self.httpd.server_address[1]
        self.live = live
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open, with the token when one is needed."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = _lan_address()
        if ":" in host:
            host = f"[{host}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, release stream clients, close the socket."""
        self.live.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5.0)
        self.httpd.server_close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
