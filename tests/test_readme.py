"""The README's configuration table lists every AUTHSCALE_* variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

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
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(AUTHSCALE_[A-Z0-9_]+)`", table))


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
    token_environ = RecordingEnviron(
        {key: value for key, value in environ.items() if key != "AUTHSCALE_SIGNING_KEYS_DIR"}
    )
    TokenSettings.from_environ(token_environ)
    return {key for key in environ.asked | token_environ.asked if key.startswith("AUTHSCALE_")}


def named_in_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services" / "authscale").rglob("*.py"):
        names |= set(re.findall(r"AUTHSCALE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return names


def test_every_variable_the_settings_read_is_documented(tmp_path: Path) -> None:
    read = read_by_settings(tmp_path)
    assert len(read) > 30
    assert read - documented() == set()


def test_every_variable_named_in_code_is_documented() -> None:
    assert named_in_code() - documented() == set()


def test_the_readme_documents_no_variable_the_code_does_not_know(tmp_path: Path) -> None:
    assert documented() - read_by_settings(tmp_path) - named_in_code() == set()
