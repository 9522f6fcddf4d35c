"""The image's inputs: the lock files agree with pyproject.toml, and every file that names an
upstream image (Dockerfile, compose.yaml, the Kubernetes manifests, prepare-docker.sh) names the
same one, so the stand-ins CI builds are the images the deployment uses.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from authscale.lab.compose.images import STAND_INS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROJECT = "authscale (pyproject.toml)"
FIX = "run deploy/lock.sh to update the lock"


@dataclass
class Pin:
    version: Version
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """Parse a `uv pip compile --generate-hashes` lock: pins, markers, hashes, `# via` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if match := re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+?)(?:\s*;\s*(.+))?", stripped):
            name, version, marker = match.groups()
            current = Pin(Version(version), Marker(marker) if marker else None)
            pins[canonicalize_name(name)] = current
        elif current is not None and stripped.startswith("--hash=sha256:"):
            current.hashes.append(stripped.removeprefix("--hash=sha256:"))
        elif current is not None and stripped.startswith("# via"):
            if rest := stripped.removeprefix("# via").strip():
                current.via.append(rest)
        elif current is not None and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#").strip())
    return pins


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


#: Extras the image carries too: the alternative servers (AUTHSCALE_SERVER).
IMAGE_EXTRAS = ("uvicorn", "granian")


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    texts = [*project["dependencies"]]
    for extra in IMAGE_EXTRAS:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def test_every_dependency_is_pinned_within_its_range_with_its_extras() -> None:
    lock = read_lock(DEPLOY / "requirements.lock")
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in deploy/requirements.lock: {FIX}"
        assert requirement.specifier.contains(lock[name].version, prereleases=True), (
            f"{requirement} but the lock pins {lock[name].version}: {FIX}"
        )
        assert PROJECT in lock[name].via, f"{name} is not locked as a direct dependency: {FIX}"
        for extra in requirement.extras:
            for text in metadata.requires(requirement.name) or ():
                needed = Requirement(text)
                if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(needed.name) in lock, (
                        f"{requirement.name}[{extra}] needs {needed.name}, not locked: {FIX}"
                    )


def test_every_locked_package_is_still_needed() -> None:
    lock = read_lock(DEPLOY / "requirements.lock")
    direct = {canonicalize_name(requirement.name) for requirement in runtime_requirements()}
    for name, pin in lock.items():
        assert pin.via, f"{name} has no `# via` annotation: {FIX}"
        for source in pin.via:
            if source == PROJECT:
                assert name in direct, f"{name} is no longer in pyproject.toml: {FIX}"
            else:
                assert canonicalize_name(source) in lock, f"{name} via unlocked {source}: {FIX}"


@pytest.mark.parametrize("lock", ["requirements.lock", "build-requirements.lock"])
def test_every_pin_carries_hashes(lock: str) -> None:
    pins = read_lock(DEPLOY / lock)
    assert pins
    for name, pin in pins.items():
        assert pin.hashes, f"{name} in {lock} has no hash"


def test_the_build_lock_satisfies_the_build_system() -> None:
    lock = read_lock(DEPLOY / "build-requirements.lock")
    build_system = pyproject()["build-system"]
    assert isinstance(build_system, dict)
    for text in build_system["requires"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} (build-system.requires) is not locked: {FIX}"
        assert requirement.specifier.contains(lock[name].version)


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
