"""Finding the Debian mirror apt uses, in both source formats, ignoring third parties."""

from __future__ import annotations

from pathlib import Path

import pytest

from images.aptsources import AptSourcesError, host_sources


def test_deb822_sources_with_a_third_party_repository(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n"
    )
    sources = host_sources("bookworm", tmp_path)
    assert sources.mirror == "http://mirror.example/debian"
    assert sources.security == "http://mirror.example/debian-security"
    assert sources.sources_list("bookworm").splitlines() == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]


def test_one_line_format_with_options(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://proxy.example:3142/debian bookworm main\n"
    )
    sources = host_sources("bookworm", tmp_path)
    assert sources.mirror == "http://proxy.example:3142/debian"
    assert sources.security is None


def test_no_mirror_for_the_suite_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://x.example/debian bullseye main\n")
    with pytest.raises(AptSourcesError, match="no apt source for Debian bookworm"):
        host_sources("bookworm", tmp_path)
