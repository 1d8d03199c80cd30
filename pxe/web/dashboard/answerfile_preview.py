"""A host's answer file as the dashboard shows it: rendered like the installer gets it, secrets
hidden.

Rendering for display must not touch the host: no install token is issued (that would cancel
the one a running installer holds), a placeholder stands in its place, and the root password
hash is masked, since a crackable hash on a shared screen is a password leak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from answerfiles.render import RenderError
from pxe.boot.answerfile import AnswerFileUnavailableError, host_answerfile
from pxe.config import Settings
from pxe.db.models import Host
from pxe.store.errors import ConflictError

TOKEN_PLACEHOLDER = "INSTALL-TOKEN-HIDDEN"  # noqa: S105 (a placeholder, not a secret)
MASK = "********"
_PASSWORD = re.compile(r"(<root-password\b[^>]*>)(.*?)(</root-password>)", re.DOTALL)


@dataclass(frozen=True)
class Preview:
    text: str | None  # the masked answer file, or None when there is none to show
    problem: str | None = None  # why there is none


def mask_secrets(text: str) -> str:
    return _PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)


def preview(settings: Settings, host: Host, base_url: str) -> Preview:
    try:
        text = host_answerfile(settings, host, TOKEN_PLACEHOLDER, base_url)
    except (RenderError, AnswerFileUnavailableError, ConflictError) as exc:
        return Preview(None, str(exc))
    return Preview(mask_secrets(text))
