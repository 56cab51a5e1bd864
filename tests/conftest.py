"""Shared fixtures: paths to assets and builders for dist-info trees."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture
def assets() -> Path:
    return ASSETS


def make_dist(
    site: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    metadata: Optional[str] = None,
    folder_version: Optional[str] = None,
) -> Path:
    """A dist-info folder as an installer writes it; `metadata` overrides the METADATA text."""
    folder = site / f"{name.replace('-', '_')}-{folder_version or version}.dist-info"
    folder.mkdir(parents=True)
    if metadata is None:
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        metadata = "\n".join(lines) + "\n\nLong description.\nRequires-Dist: not-a-header\n"
    if metadata != "":
        (folder / "METADATA").write_text(metadata)
    return folder
