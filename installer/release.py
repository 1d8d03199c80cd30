"""The release an answer file points at: its URL source, read and checked before any write.

Fresh install and upgrade both lay a release down, and both must refuse a source they cannot use
while the disk is still untouched, so finding and checking it is one rule shared by both.
"""

from __future__ import annotations

from answerfiles.model import AnswerFile, SourceType
from common.release import ArtefactKind, Manifest
from installer import fetch
from installer.errors import RefusedError

# Without these two the laid-down root cannot boot.
REQUIRED = (ArtefactKind.HYPERVISOR, ArtefactKind.DOM0_ROOTFS)


class SourceRefusedError(RefusedError):
    """The answer file's product source cannot be used."""


def release_base(answers: AnswerFile) -> str:
    """The first URL source: the only kind this installer can lay down."""
    for source in answers.sources:
        if source.type == SourceType.URL and source.location:
            return source.location
    kinds = ", ".join(s.type.value for s in answers.sources) or "none"
    raise SourceRefusedError(
        f"the answer file names no URL source (found: {kinds}); point <source type=\"url\"> "
        "at a release directory holding manifest.json"
    )


def load_release(answers: AnswerFile) -> tuple[str, Manifest]:
    """The release's base URL and manifest; refused when it lacks what a host needs to boot."""
    base = release_base(answers)
    manifest = fetch.fetch_manifest(base)
    missing = [k.value for k in REQUIRED if not manifest.has(k)]
    if missing:
        raise SourceRefusedError(
            f"release {manifest.name!r} at {base} lacks {', '.join(missing)}, "
            "so it cannot be installed"
        )
    return base, manifest
