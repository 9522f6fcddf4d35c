"""The tutorial's page on its own origin: a second nginx serving ``lab/assets/web`` to browsers.

The page and the gateway are two origins on one site: ``http://localhost:5173`` and
``http://localhost:8080`` differ by port only, and a port is part of an origin but not of a site.
So the fetch needs CORS with credentials (the replicas answer it for the exact origins in
``AUTHSCALE_CORS_ORIGINS``), while ``SameSite=Lax`` cookies still travel: to a browser they are
first-party. Both URLs must name the same host; a page on ``localhost`` calling ``127.0.0.1``
would be cross-site, and its cookies would be dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from authscale.lab import assets
from authscale.lab.stack import processes
from authscale.lab.stack.processes import ProcessSpec

#: The tutorial's dev server (Vite's default port).
DEFAULT_PORT = 5173
#: The host name both the page and the gateway are given to the browser by (see above).
BROWSER_HOST = "localhost"


def origin(port: int) -> str:
    return f"http://{BROWSER_HOST}:{port}"


def page_root() -> Path:
    return assets.path("web")


@dataclass(frozen=True)
class WebConfig:
    listen: str
    #: The gateway's URL as the page calls it.
    api: str
    pid_file: str
    error_log: str
    access_log: str
    temp_dir: str
    #: The worker user when nginx starts as root.
    user: str | None = None


def render(config: WebConfig) -> str:
    """An nginx configuration that serves the page, and ``/config.json`` naming the gateway."""
    # The page may talk to itself and to the gateway, nothing else: an injected script cannot
    # send a password or a token anywhere but there.
    policy = (
        f"default-src 'self'; connect-src 'self' {config.api}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    settings = json.dumps({"api": config.api})
    user = f"user {config.user};" if config.user else ""
    temp = config.temp_dir
    return f"""# The tutorial's page (authscale.lab.stack.web); written at every start, do not edit.
{user}
worker_processes 1;
pid {config.pid_file};
error_log {config.error_log} warn;
events {{
    worker_connections 256;
}}
http {{
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    access_log {config.access_log};
    server_tokens off;
    types {{
        text/html html;
        text/javascript js;
        text/css css;
        application/json json;
    }}
    default_type application/octet-stream;
    server {{
        listen {config.listen};
        root {page_root()};
        index index.html;
        add_header Content-Security-Policy "{policy}" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy no-referrer always;
        # A changed page shows at the next reload, as on a dev server.
        add_header Cache-Control no-cache always;
        location = /favicon.ico {{
            access_log off;
            return 204;
        }}
        location = /config.json {{
            default_type application/json;
            return 200 '{settings}';
        }}
    }}
}}
"""


def spec(run_dir: Path, host: str, port: int, api: str) -> ProcessSpec:
    """The page's server in a local stack's run directory, its configuration written."""
    prefix = run_dir / "web"
    logs = run_dir / "logs"
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    config = WebConfig(
        listen=f"{host}:{port}",
        api=api,
        pid_file=str(prefix / "nginx.pid"),
        error_log=str(logs / "web-error.log"),
        access_log=str(logs / "web-access.log"),
        temp_dir=str(prefix / "temp"),
        # nginx started as root hands its workers to an unprivileged user.
        user="nobody nogroup" if os.geteuid() == 0 else None,
    )
    conf.write_text(render(config))
    return ProcessSpec(
        name="web",
        role="web",
        argv=[
            *(processes.binary("nginx"), "-p", str(prefix), "-c", str(conf)),
            *("-e", config.error_log, "-g", "daemon off;"),
        ],
        log_file=logs / "web.log",
        ready_url=f"http://{host}:{port}/config.json",
    )
