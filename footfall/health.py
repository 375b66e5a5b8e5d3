"""The HTTP endpoint both programs expose: ``/metrics`` (Prometheus text format), ``/healthz``
(the process answers) and ``/readyz`` (it does its job: connected to the broker, store open).

Metrics are read when they are scraped, from counters the program keeps anyway (a custom
collector), so nothing is added to the per-frame or per-message path.

One request at a time, in one thread: the agent's outbox keeps a SQLite connection per thread,
and a server that made a thread per request would open one per scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

Readiness = Callable[[], str | None]
"""None when ready; otherwise why not (one line, shown on /readyz)."""


def require_prometheus() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ImportError(
            "the metrics endpoint needs prometheus-client: install the 'edge' or 'aggregator' "
            "extra (pip install 'footfall[edge]')"
        ) from None


class HealthServer:
    """Serves the three endpoints on ``host:port`` (port 0: any free port, see :attr:`port`)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ready: Readiness | None = None,
    ) -> None:
        require_prometheus()
        self.registry = registry
        self.ready = ready or (lambda: None)
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a client that stalls cannot hold the endpoint for long

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    server._metrics(self)
                elif path == "/healthz":
                    self._text(200, "ok\n")
                elif path == "/readyz":
                    try:
                        problem = server.ready()
                    except Exception as exc:
                        problem = f"readiness check failed: {type(exc).__name__}: {exc}"
                    if problem is None:
                        self._text(200, "ready\n")
                    else:
                        self._text(503, f"not ready: {problem}\n")
                else:
                    self._text(404, "not found: try /metrics, /healthz or /readyz\n")

            def _text(self, code: int, body: str) -> None:
                data = body.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        self._httpd = HTTPServer((host, port), Handler)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="health-http", daemon=True
        )

    def _metrics(self, handler: BaseHTTPRequestHandler) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        try:
            data = generate_latest(self.registry)
        except Exception as exc:
            log.exception("collecting metrics failed")
            body = f"collecting metrics failed: {type(exc).__name__}\n".encode()
            handler.send_response(500)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", CONTENT_TYPE_LATEST)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info(
            "metrics and health on http://%s:%d/metrics (/healthz, /readyz)", self.host, self.port
        )
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
