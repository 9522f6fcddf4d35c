"""The stand-in images deploy/prepare-docker.sh builds where no registry answers.

compose.yaml names every image through a variable whose default is the upstream image. The
stand-ins carry local names, never upstream ones, so `docker compose up` by hand runs the real
images even on a machine that has both. The tests and the compose backend choose a stand-in
on purpose, through its variable, when it exists here and the caller has not chosen an image.
"""

from __future__ import annotations

from collections.abc import Mapping

from authscale.lab.compose import engine as docker_engine

#: compose.yaml's variable -> the stand-in's local name (the same list as prepare-docker.sh's).
STAND_INS = {
    "AUTHSCALE_PYTHON_IMAGE": "authscale-standin/python:3.11",
    "AUTHSCALE_NGINX_IMAGE": "authscale-standin/nginx:1.22",
    "AUTHSCALE_REDIS_IMAGE": "authscale-standin/redis:7.0",
    "AUTHSCALE_PROMETHEUS_IMAGE": "authscale-standin/prometheus:2.42",
    "AUTHSCALE_NGINX_EXPORTER_IMAGE": "authscale-standin/nginx-exporter:0.11",
    "AUTHSCALE_REDIS_EXPORTER_IMAGE": "authscale-standin/redis-exporter:1.45",
    "AUTHSCALE_LOCUST_IMAGE": "authscale-standin/locust:2.47",
}


def stand_in_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that choose each stand-in present here and not chosen in ``environ``."""
    wanted = {variable: tag for variable, tag in STAND_INS.items() if variable not in environ}
    if not wanted:
        return {}
    listing = docker_engine.output(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]
    )
    present = set(listing.split())
    return {variable: tag for variable, tag in wanted.items() if tag in present}
