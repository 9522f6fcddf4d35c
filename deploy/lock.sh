#!/usr/bin/env bash
# Regenerates the image's lock files from pyproject.toml (runtime dependencies and the server
# extras) and from build-requirements.in (the build backend), pinned with hashes. Run after changing either;
# tests/test_lock.py fails until you do.
#
# uv resolves "universally": one lock for every Python 3.11 and platform, with markers where
# they differ (e.g. async-timeout on Python before 3.11.3, as on Debian 12's 3.11.2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=${UV:-.venv/bin/uv}
for pair in "pyproject.toml deploy/requirements.lock" \
    "deploy/build-requirements.in deploy/build-requirements.lock"; do
    read -r source lock <<<"$pair"
    # The image carries the alternative servers too (AUTHSCALE_SERVER chooses at start).
    extras=()
    [ "$source" = pyproject.toml ] && extras=(--extra uvicorn --extra granian)
    "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        "${extras[@]}" --custom-compile-command deploy/lock.sh --output-file "$lock" "$source"
done
