"""Where the client's settings come from, first found wins: the call's arguments, the
environment (``SK8_SERVER``, ``SK8_TOKEN``, ``SK8_TEAM``, ``SK8_ENV``, ``SK8_TLS``), then a config
file (``SK8_CONFIG``, default ``~/.config/sk8/config.yaml``) with the keys ``server``, ``token``,
``team``, ``env`` and ``tls``. The server defaults to ``http://127.0.0.1:8080`` like the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from .errors import ConfigError

DEFAULT_SERVER = "http://127.0.0.1:8080"
_KEYS = ("server", "token", "team", "env", "tls")


@dataclass(frozen=True)
class Settings:
    """Resolved client settings. ``tls``: the gateway speaks TLS (``gateway.tls``)."""

    server: str = DEFAULT_SERVER
    token: Optional[str] = None
    team: Optional[str] = None
    env: Optional[str] = None
    tls: bool = False

    @classmethod
    def load(cls, **given: Any) -> "Settings":
        """Settings from ``given`` (``None`` means unset), then the environment, then the file."""
        unknown = set(given) - set(_KEYS)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        from_file = _read_file()
        values: Dict[str, Any] = {}
        for key in _KEYS:
            value = given.get(key)
            if value is None:
                value = os.environ.get(f"SK8_{key.upper()}") or None
            if value is None:
                value = from_file.get(key)
            if value is not None:
                values[key] = value
        if "tls" in values:
            values["tls"] = _flag(values["tls"])
        if "server" in values:
            values["server"] = str(values["server"]).rstrip("/")
        return cls(**values)

    def require(self, key: str) -> str:
        """The setting ``key``, or a ConfigError saying how to give it."""
        value = getattr(self, key)
        if not value:
            raise ConfigError(
                "missing_setting",
                f"no {key}: pass {key}=…, set SK8_{key.upper()}, or put `{key}:` in {config_path()}",
                field=key,
            )
        return str(value)


def config_path() -> Path:
    """The config file: ``SK8_CONFIG``, else ``~/.config/sk8/config.yaml``."""
    explicit = os.environ.get("SK8_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".config" / "sk8" / "config.yaml"


def _read_file() -> Dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError("bad_config_file", f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError("bad_config_file", f"{path} must hold a mapping of settings")
    unknown = set(data) - set(_KEYS)
    if unknown:
        raise ConfigError(
            "bad_config_file", f"{path}: unknown keys {sorted(unknown)} (known: {list(_KEYS)})"
        )
    return data


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError("bad_setting", f"tls must be true or false, not {value!r}", field="tls")
