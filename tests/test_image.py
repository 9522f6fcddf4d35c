"""The image's inputs: every file that names an upstream image (Dockerfile, compose.yaml, the
Kubernetes manifests, prepare-docker.sh) names the same one, so the stand-ins CI builds are the
images the deployment uses; the build context holds only what the image needs. Its lock files
are checked with the others in tests/test_locks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from authscale.lab.compose.images import STAND_INS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def compose_defaults() -> dict[str, str]:
    """compose.yaml's image variables and their defaults, the upstream images."""
    text = (ROOT / "compose.yaml").read_text()
    return dict(re.findall(r"\$\{(AUTHSCALE_[A-Z_]+_IMAGE):-([^}]+)\}", text))


def test_every_file_names_the_same_upstream_images() -> None:
    upstream = compose_defaults()
    assert set(upstream) >= {
        "AUTHSCALE_PYTHON_IMAGE",
        "AUTHSCALE_NGINX_IMAGE",
        "AUTHSCALE_REDIS_IMAGE",
    }
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={upstream['AUTHSCALE_PYTHON_IMAGE']}\n" in dockerfile
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert compose["gateway"]["image"] == "${AUTHSCALE_NGINX_IMAGE:-nginx:1.28-bookworm}"
    assert compose["redis"]["image"] == "${AUTHSCALE_REDIS_IMAGE:-redis:7.2-bookworm}"
    manifests = "".join(path.read_text() for path in (DEPLOY / "k8s" / "base").glob("*.yaml"))
    assert set(re.findall(r"image: (nginx:\S+|redis:\S+)", manifests)) == {
        upstream["AUTHSCALE_NGINX_IMAGE"],
        upstream["AUTHSCALE_REDIS_IMAGE"],
    }
    example = (ROOT / ".env.example").read_text()
    for variable, image in upstream.items():
        assert f"\n{variable}={image}\n" in example, f"{variable} in .env.example"


def test_stand_ins_carry_local_names_never_upstream_ones() -> None:
    script = (DEPLOY / "prepare-docker.sh").read_text()
    built = dict(re.findall(r"^(AUTHSCALE_[A-Z_]+_IMAGE)=(\S+)$", script, re.MULTILINE))
    assert built == STAND_INS, "prepare-docker.sh and authscale.lab.compose.images disagree"
    upstream = compose_defaults()
    assert set(STAND_INS) <= set(upstream), "every stand-in replaces an image compose.yaml names"
    for tag in STAND_INS.values():
        assert tag.startswith("authscale-standin/"), tag
        assert tag not in upstream.values()


def test_the_locust_stand_in_is_tagged_with_the_upstream_images_version() -> None:
    upstream = compose_defaults()["AUTHSCALE_LOCUST_IMAGE"]
    assert upstream.startswith("locustio/locust:")
    major, minor, _ = upstream.rsplit(":", 1)[1].split(".")
    # Its lock holds that very version (tests/test_locks.py).
    assert STAND_INS["AUTHSCALE_LOCUST_IMAGE"] == f"authscale-standin/locust:{major}.{minor}"


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
