#!/usr/bin/env bash
# Regenerates every lock file, pinned with hashes. Run after changing dependencies in
# pyproject.toml, deploy/build-requirements.in or deploy/locust-requirements.in;
# tests/test_locks.py fails until you do.
#
#   deploy/requirements.lock        the image: the runtime and the server extras
#   deploy/build-requirements.lock  the build backend: the image's wheel, the editable install
#   deploy/lab-requirements.lock    `make up`: the image's packages and the lab extra
#   deploy/dev-requirements.lock    `make test`: all of those, and the dev and loadtest extras
#   deploy/locust-requirements.lock the Locust stand-in image (deploy/prepare-docker.sh): Locust
#                                   at the upstream image's version, as the suite runs it
#
# Each lock is constrained by the one before, so the suite tests the very versions `make up` and
# the image run. uv resolves "universally": one lock for every Python 3.11 and platform, with
# markers where they differ (e.g. async-timeout on Python before 3.11.3, as on Debian 12's 3.11.2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=${UV:-.venv/bin/uv}

lock() {
    local lock=$1
    shift
    "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        --custom-compile-command deploy/lock.sh --output-file "$lock" "$@"
}

# The image carries the alternative servers too (AUTHSCALE_SERVER chooses at start).
lock deploy/requirements.lock pyproject.toml --extra uvicorn --extra granian
lock deploy/build-requirements.lock deploy/build-requirements.in
lock deploy/lab-requirements.lock pyproject.toml --constraint deploy/requirements.lock \
    --extra uvicorn --extra granian --extra lab
lock deploy/dev-requirements.lock pyproject.toml --constraint deploy/lab-requirements.lock \
    --extra uvicorn --extra granian --extra lab --extra dev --extra loadtest
lock deploy/locust-requirements.lock deploy/locust-requirements.in \
    --constraint deploy/dev-requirements.lock
