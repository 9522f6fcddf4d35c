"""docs/configuration.md lists every AUTHSCALE_* variable the code reads, and no other; every
relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authscale.core.settings import Settings
from authscale.tokens.settings import IssuerSettings, KeyringSettings, TokenSettings

ROOT = Path(__file__).resolve().parents[1]


class RecordingEnviron(dict[str, str]):
    """A mapping that remembers every key the settings asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def documented() -> set[str]:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"`(AUTHSCALE_[A-Z0-9_]+)`", reference))


def read_by_settings(tmp_path: Path) -> set[str]:
    environ = RecordingEnviron(
        {
            "AUTHSCALE_REDIS_URL": "redis://:a-real-password@127.0.0.1:6379/0",
            "AUTHSCALE_SIGNING_KEYS_DIR": str(tmp_path),
            "AUTHSCALE_JWKS_URL": "http://127.0.0.1:1/.well-known/jwks.json",
        }
    )
    Settings.from_environ(environ)
    IssuerSettings.from_environ(environ)
    KeyringSettings.from_environ(environ)
    # A token replica in denylist mode: the one mode in which it reads a Redis URL.
    token_environ = RecordingEnviron(
        {key: value for key, value in environ.items() if key != "AUTHSCALE_SIGNING_KEYS_DIR"}
        | {"AUTHSCALE_TOKEN_DENYLIST": "true"}
    )
    TokenSettings.from_environ(token_environ)
    return {key for key in environ.asked | token_environ.asked if key.startswith("AUTHSCALE_")}


def named_in_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services" / "authscale").rglob("*.py"):
        names |= set(re.findall(r"AUTHSCALE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return names


def read_by_compose() -> set[str]:
    return set(re.findall(r"\$\{(AUTHSCALE_[A-Z0-9_]+)", (ROOT / "compose.yaml").read_text()))


def test_every_variable_the_settings_read_is_documented(tmp_path: Path) -> None:
    read = read_by_settings(tmp_path)
    assert len(read) > 30
    assert read - documented() == set()


def test_every_variable_named_in_code_or_read_by_compose_is_documented() -> None:
    assert named_in_code() - documented() == set()
    assert read_by_compose() - documented() == set()


def test_the_reference_documents_no_variable_the_code_does_not_know(tmp_path: Path) -> None:
    known = read_by_settings(tmp_path) | named_in_code() | read_by_compose()
    assert documented() - known == set()


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "deploy" / "k8s" / "README.md",
        *(ROOT / "docs").rglob("*.md"),
    ]


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file(document: Path) -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", document.read_text())
    local = [target.split("#", 1)[0] for target in targets if "://" not in target]
    missing = [target for target in local if target and not (document.parent / target).exists()]
    assert missing == []
