"""The image's inputs: every file that names an upstream image (Dockerfile, compose.yaml, the
Kubernetes manifests, prepare-docker.sh) names the same one, so the stand-ins CI builds are the
images the deployment uses; the build context holds only what the image needs. Its lock files
are checked with the others in tests/test_locks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def script_tags() -> dict[str, str]:
    text = (DEPLOY / "prepare-docker.sh").read_text()
    return dict(re.findall(r"^(PYTHON|NGINX|REDIS)_IMAGE=(\S+)$", text, re.MULTILINE))


def test_every_file_names_the_same_upstream_images() -> None:
    tags = script_tags()
    assert set(tags) == {"PYTHON", "NGINX", "REDIS"}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={tags['PYTHON']}\n" in dockerfile
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert compose["gateway"]["image"] == tags["NGINX"]
    assert compose["redis"]["image"] == tags["REDIS"]
    manifests = "".join(path.read_text() for path in (DEPLOY / "k8s" / "base").glob("*.yaml"))
    assert set(re.findall(r"image: (nginx:\S+|redis:\S+)", manifests)) == {
        tags["NGINX"],
        tags["REDIS"],
    }


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "everything is excluded first, then the few inputs let back in"
    assert set(rules[1:]) == {
        "!pyproject.toml",
        "!README.md",
        "!services/",
        "services/authscale/lab/",
        "!deploy/requirements.lock",
        "!deploy/build-requirements.lock",
        "!deploy/wheels/",
        "!deploy/certs/",
        "**/__pycache__",
        "**/*.egg-info",
    }
