"""A release server whose TLS certificate the installer does not trust: refused at once, saying
so, instead of being asked again for 45 s as if it were restarting."""

from __future__ import annotations

import datetime
import functools
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import small_release

from common.release import ArtefactKind
from installer import fetch


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def https_release(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A release served over HTTPS with a self-signed certificate; (base URL, release dir)."""
    release = tmp_path / "release"
    small_release.build(release)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    handler = functools.partial(_Quiet, directory=str(release))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", release
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_untrusted_certificate_refuses_the_release_at_once(https_release) -> None:
    base, _release = https_release
    start = time.monotonic()
    with pytest.raises(fetch.ReleaseUnavailableError) as err:
        fetch.fetch_manifest(base)
    assert time.monotonic() - start < 5
    assert str(err.value) == (
        f"no release at {base}: {base}/manifest.json: the server's TLS certificate is not "
        "trusted (self-signed certificate); give the server a certificate from a CA the "
        "installer trusts"
    )


def test_an_untrusted_certificate_stops_a_download_at_once(https_release) -> None:
    base, release = https_release
    art = fetch.fetch_manifest(str(release)).artefact(ArtefactKind.DOM0_ROOTFS)
    start = time.monotonic()
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_artefact(base, art, lambda _b: None, decompress=True)
    assert time.monotonic() - start < 5
    assert str(err.value) == (
        f"cannot download {base}/{art.path}: the server's TLS certificate is not trusted "
        "(self-signed certificate); give the server a certificate from a CA the installer trusts"
    )
