"""A release signed with ``images sign`` and served by ``serve`` is checked by the installer."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from support import small_release
from support.gpg_keys import site_keys

from answerfiles.parse import parse_answerfile
from common import wire
from images.signing import sign_release
from installer.release import load_release, open_source
from installer.release_trust import TrustRefusedError
from pxe.config import Settings
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.web.app import create_app


def _answers(url: str):
    return parse_answerfile(
        '<installation gpgcheck="true"><primary-disk>sda</primary-disk>'
        f'<source type="url">{url}</source><admin-interface name="eth0" proto="dhcp"/>'
        "</installation>",
        "served.xml",
    ).answers


def test_the_server_serves_the_signature_the_installer_checks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for name in ("signed", "unsigned"):
        small_release.build(settings.releases_dir / name)
    database = Database(settings.database)
    database.migrate()
    try:
        with (
            site_keys("site") as keys,
            running_server(create_app(settings, database=database)) as srv,
        ):
            site = keys["site"]
            sign_release(settings.releases_dir / "signed", site.fingerprint, site.home)
            answers = _answers(wire.release_url(srv.url, "signed"))
            with ExitStack() as media:
                _, manifest = load_release(
                    answers, open_source(answers, media), keyring=site.keyring
                )
            unsigned = _answers(wire.release_url(srv.url, "unsigned"))
            with ExitStack() as media, pytest.raises(TrustRefusedError, match="is not signed"):
                load_release(unsigned, open_source(unsigned, media), keyring=site.keyring)
    finally:
        database.dispose()
    assert manifest.name == "test"
