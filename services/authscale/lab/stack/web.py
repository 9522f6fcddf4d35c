"""``authscale web``: the tutorial's page on an origin of its own, as the tutorial's dev server.

The page and the gateway are two origins on one site: ``http://localhost:5173`` and
``http://localhost:8080`` differ by port only, and a port is part of an origin but not of a site.
So the fetch needs CORS with credentials (the replicas answer it for the exact origins in
``AUTHSCALE_CORS_ORIGINS``), while ``SameSite=Lax`` cookies still travel: to a browser they are
first-party. Both URLs must name the same host; a page on ``localhost`` calling ``127.0.0.1``
would be cross-site, and its cookies would be dropped.

The server is the standard library's, run as the user who started it: a dev server reads the
page wherever the package is, which an nginx worker dropped to ``nobody`` may not (a checkout
under a private home directory). ``authscale up`` runs it as one process of the local stack.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from authscale.lab import assets
from authscale.lab.stack.processes import ProcessSpec

#: The tutorial's dev server (Vite's default port).
DEFAULT_PORT = 5173
#: The host name both the page and the gateway are given to the browser by (see above).
BROWSER_HOST = "localhost"


def origin(port: int) -> str:
    return f"http://{BROWSER_HOST}:{port}"


def page_root() -> Path:
    return assets.path("web")


#: Every type the page is made of, with its charset; anything else is served as bytes.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    "": "application/octet-stream",
}


class PageHandler(SimpleHTTPRequestHandler):
    """The page's files, ``/config.json`` naming the gateway, and no directory listings."""

    def __init__(self, *args: Any, api: str, **kwargs: Any) -> None:
        # Set before the base class's __init__, which handles the request at once.
        self.api = api
        self.extensions_map = CONTENT_TYPES
        super().__init__(*args, directory=str(page_root()), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.json":
            # The page is told by its own server where to send a password, never by its URL.
            body = json.dumps({"api": self.api}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
        else:
            super().do_GET()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404)

    def end_headers(self) -> None:
        # The page may talk to itself and to the gateway, nothing else: an injected script
        # cannot send a password or a token anywhere but there.
        policy = (
            f"default-src 'self'; connect-src 'self' {self.api}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
        self.send_header("Content-Security-Policy", policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        # A changed page shows at the next reload, as on a dev server.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def server(host: str, port: int, api: str) -> ThreadingHTTPServer:
    """The page's server, bound and ready to ``serve_forever()``."""
    return ThreadingHTTPServer((host, port), functools.partial(PageHandler, api=api))


def spec(run_dir: Path, host: str, port: int, api: str) -> ProcessSpec:
    """``authscale web`` as a process of a local stack."""
    return ProcessSpec(
        name="web",
        role="web",
        argv=[
            *(sys.executable, "-m", "authscale", "web"),
            *("--host", host, "--port", str(port), "--api", api),
        ],
        # The supervisor's own environment: the same interpreter finds the same package.
        env=dict(os.environ),
        log_file=run_dir / "logs" / "web.log",
        ready_url=f"http://{host}:{port}/config.json",
    )


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    web = commands.add_parser(
        "web",
        help="serve the tutorial's browser page (authscale up starts it too)",
        description=(
            "Serve the browser page on http://localhost:PORT. Its origin must be in the "
            "gateway's AUTHSCALE_CORS_ORIGINS (the local stack and .env.example allow "
            f"{origin(DEFAULT_PORT)})."
        ),
    )
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=DEFAULT_PORT)
    web.add_argument(
        "--api",
        default=origin(8080),
        help="the gateway's URL as the browser reaches it, same host name as the page's "
        f"(default {origin(8080)}: the local stack's and compose's)",
    )
    web.set_defaults(run=_web)


def _web(args: argparse.Namespace) -> int:
    with server(args.host, args.port, args.api.rstrip("/")) as page:
        print(f"the page: {origin(args.port)} (calls {args.api}); Ctrl-C stops it", flush=True)
        page.serve_forever()
    return 0
