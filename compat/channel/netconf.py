"""Network settings as pip has them: index URLs, proxy and certificates (environment, pip.conf)."""

from __future__ import annotations

import configparser
import os
import ssl
import sys
from pathlib import Path
from typing import Any, Optional, Union

from msgspec import Struct

from compat.errors import UsageError

PYPI_SIMPLE = "https://pypi.org/simple"


def _pip_config_files() -> list[Path]:
    """pip's configuration files, lowest precedence first (global, user, site), or the one
    $PIP_CONFIG_FILE names; os.devnull there means none."""
    named = os.environ.get("PIP_CONFIG_FILE")
    if named:
        return [] if named == os.devnull else [Path(named)]
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(":") if d]
    files.append(Path("/etc/pip.conf"))
    home = Path.home()
    files.append(home / ".pip" / "pip.conf")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files.append(Path(config_home) / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    return files


def pip_config() -> dict[str, str]:
    """[global] then [install] settings of pip's configuration files (later files win)."""
    out: dict[str, str] = {}
    for path in _pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            continue  # pip itself would refuse it; compat just does not use it
        for section in ("global", "install"):
            if parser.has_section(section):
                out.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    return out


def _setting(env: str, key: str, config: dict[str, str]) -> Optional[str]:
    value = os.environ.get(env)
    if value is not None and value.strip():
        return value.strip()
    value = config.get(key)
    return value.strip() if value and value.strip() else None


class NetConfig(Struct, frozen=True):
    """Where to look and how to connect, from the command line, the environment and pip.conf."""

    indexes: tuple[str, ...]  # simple-index URLs, the main one first
    verify: Union[bool, str] = True  # a CA bundle path (file or folder), or the default store
    proxy: Optional[str] = None  # None: httpx reads HTTPS_PROXY / ALL_PROXY / NO_PROXY
    origin: str = ""  # where the index URL came from (for messages)

    def client_options(self) -> dict[str, Any]:
        """httpx.Client keyword arguments for these settings."""
        opts: dict[str, Any] = {"trust_env": True}
        if isinstance(self.verify, str):
            path = Path(self.verify)
            try:
                opts["verify"] = (
                    ssl.create_default_context(capath=str(path))
                    if path.is_dir()
                    else ssl.create_default_context(cafile=str(path))
                )
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"cannot use the CA bundle {self.verify}: {exc}",
                    hint="point REQUESTS_CA_BUNDLE / PIP_CERT / SSL_CERT_FILE at a PEM file",
                ) from exc
        if self.proxy:
            opts["proxy"] = self.proxy
        return opts


def net_config(index_url: Optional[str] = None) -> NetConfig:
    """The index URLs (--index-url, else PIP_INDEX_URL, else pip.conf's index-url, else PyPI;
    then PIP_EXTRA_INDEX_URL / extra-index-url), the CA bundle (PIP_CERT, REQUESTS_CA_BUNDLE,
    pip.conf's cert; SSL_CERT_FILE / SSL_CERT_DIR through httpx) and proxy (PIP_PROXY, pip.conf's
    proxy; else the *_PROXY variables through httpx)."""
    config = pip_config()
    if index_url:
        main, origin = index_url, "--index-url"
    elif os.environ.get("PIP_INDEX_URL", "").strip():
        main, origin = os.environ["PIP_INDEX_URL"].strip(), "PIP_INDEX_URL"
    elif config.get("index-url", "").strip():
        main, origin = config["index-url"].strip(), "pip.conf"
    else:
        main, origin = PYPI_SIMPLE, "default"
    extra_text = (
        "" if index_url else (_setting("PIP_EXTRA_INDEX_URL", "extra-index-url", config) or "")
    )
    extras = [u for u in extra_text.split() if u]
    cert = (
        _setting("PIP_CERT", "cert", config)
        or os.environ.get("REQUESTS_CA_BUNDLE", "").strip()
        or None
    )
    proxy = _setting("PIP_PROXY", "proxy", config)
    indexes = tuple(dict.fromkeys(u.rstrip("/") for u in (main, *extras)))
    return NetConfig(indexes, cert or True, proxy, origin)
