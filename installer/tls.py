"""A TLS certificate the installer does not trust, told apart from a server that is down.

Both reach the installer as an ``OSError`` from urllib. A server that is down may be back in a
minute, so the installer asks again; no retry makes a certificate trusted, and asking again only
made the user wait to learn it: 45 s for a release, up to 15 minutes for an install's last
progress report.
"""

from __future__ import annotations

import ssl
import urllib.error


def refused_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate refusal behind ``exc``, when that is what it is."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return reason if isinstance(reason, ssl.SSLCertVerificationError) else None


def explain(refused: ssl.SSLCertVerificationError) -> str:
    return (
        f"the server's TLS certificate is not trusted ({refused.verify_message}); give the "
        "server a certificate from a CA the installer trusts"
    )
