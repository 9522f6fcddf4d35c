#!/usr/bin/env bash
# Regenerates every lock file, pinned with hashes. Run after changing dependencies in
# pyproject.toml or deploy/build-requirements.in; tests/test_image.py and tests/test_locks.py
# fail until you do.
#
#   deploy/requirements.lock        the runtime and the server extras: the image, and `make up`
#   deploy/build-requirements.lock  the build backend: the image's wheel, the editable install
#   deploy/dev-requirements.lock    everything `make test` needs: the dev and loadtest extras too
#
# The dev lock is constrained by the runtime lock, so the suite tests the versions the image and
# `make up` run. uv resolves "universally": one lock for every Python 3.11 and platform, with
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
lock deploy/dev-requirements.lock pyproject.toml --constraint deploy/requirements.lock \
    --extra dev --extra loadtest --extra uvicorn --extra granian
