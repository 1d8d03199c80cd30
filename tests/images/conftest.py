"""Shared fixtures of the images tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from images.cache import BuildCache


@pytest.fixture
def empty_cache(tmp_path: Path) -> BuildCache:
    """A cache of our own: tests never read or fill the machine's /var/cache."""
    return BuildCache(tmp_path / "cache")


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()
