"""Fixtures of the fuzz suite: what every case needs, built once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz import campaign


@pytest.fixture(scope="session")
def fuzz_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[campaign.Setup]:
    """The compiled ELF seed and fake NVML library, the warmed database, the cache oracle."""
    yield campaign.setup(tmp_path_factory.mktemp("fuzz-setup"))
