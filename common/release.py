"""The release format shared by the image builders, the installer and the server.

A release is a directory ``<releases>/<name>/`` holding ``manifest.json`` and the artefact files
it names. The manifest is the contract: the builders write it, the server serves it next to the
files, and the installer trusts nothing it downloads until size and sha256 match it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

MANIFEST = "manifest.json"
# A detached OpenPGP signature of the manifest's exact bytes, by the site's release key. It covers
# every artefact through the sha256 the manifest lists (common/release_signature.py checks it).
SIGNATURE = MANIFEST + ".asc"
# The filesystem label of a medium carrying a release at its top (``<source type="local"/>``).
LOCAL_MEDIA_LABEL = "XCP_RELEASE"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class ArtefactKind(StrEnum):
    HYPERVISOR = "hypervisor"  # xen.gz, multiboot2
    DOM0_ROOTFS = "dom0-rootfs"  # tar.zst of the dom0 root filesystem
    DOM0_KERNEL = "dom0-kernel"
    DOM0_INITRD = "dom0-initrd"
    INSTALLER_KERNEL = "installer-kernel"
    INSTALLER_INITRD = "installer-initrd"


class ReleaseError(Exception):
    """A release directory or manifest is missing, malformed or does not match its files."""


@dataclass(frozen=True)
class Artefact:
    kind: ArtefactKind
    path: str  # relative to the release directory
    size: int
    sha256: str
    version: str = ""


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created: str
    artefacts: tuple[Artefact, ...] = ()
    format: int = FORMAT_VERSION
    # Free-form facts about the build (Debian suite, package versions, build seconds, demo flag).
    notes: dict[str, str] = field(default_factory=dict)

    def artefact(self, kind: ArtefactKind) -> Artefact:
        for art in self.artefacts:
            if art.kind == kind:
                return art
        raise ReleaseError(f"release {self.name!r} has no {kind.value} artefact")

    def has(self, kind: ArtefactKind) -> bool:
        return any(art.kind == kind for art in self.artefacts)

    def to_json(self) -> str:
        data = asdict(self)
        data["artefacts"] = [{**asdict(a), "kind": a.kind.value} for a in self.artefacts]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = MANIFEST) -> Manifest:
        try:
            data = json.loads(text)
            artefacts = tuple(
                Artefact(
                    kind=ArtefactKind(a["kind"]),
                    path=str(a["path"]),
                    size=int(a["size"]),
                    sha256=str(a["sha256"]),
                    version=str(a.get("version", "")),
                )
                for a in data.get("artefacts", [])
            )
            manifest = cls(
                name=str(data["name"]),
                version=str(data["version"]),
                created=str(data["created"]),
                artefacts=artefacts,
                format=int(data.get("format", FORMAT_VERSION)),
                notes={str(k): str(v) for k, v in data.get("notes", {}).items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"{origin}: not a valid release manifest ({exc})") from exc
        for art in manifest.artefacts:
            if os.path.isabs(art.path) or ".." in Path(art.path).parts:
                raise ReleaseError(f"{origin}: artefact path {art.path!r} leaves the release")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(release_dir: Path, kind: ArtefactKind, rel_path: str, version: str = "") -> Artefact:
    """Measure a file already inside ``release_dir`` as an artefact of the given kind."""
    path = release_dir / rel_path
    return Artefact(kind, rel_path, path.stat().st_size, sha256_file(path), version)


def load(release_dir: Path) -> Manifest:
    path = Path(release_dir) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ReleaseError(f"{path}: no manifest; is {release_dir} a release directory?") from exc
    return Manifest.from_json(text, str(path))


def save(release_dir: Path, manifest: Manifest) -> Path:
    """Write the manifest atomically, so a reader never sees half of one.

    A signature of the previous manifest goes first: left beside new bytes it would only make
    installers refuse the release with a puzzling "bad signature"; the release is unsigned until
    it is signed again.
    """
    path = Path(release_dir) / MANIFEST
    (Path(release_dir) / SIGNATURE).unlink(missing_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    return path


def verify(release_dir: Path, manifest: Manifest | None = None) -> list[str]:
    """Every mismatch between the manifest and the files, as sentences; empty when intact."""
    release_dir = Path(release_dir)
    manifest = manifest or load(release_dir)
    problems = []
    for art in manifest.artefacts:
        path = release_dir / art.path
        if not path.is_file():
            problems.append(f"{art.path}: missing ({art.kind.value})")
            continue
        size = path.stat().st_size
        if size != art.size:
            problems.append(f"{art.path}: size {size} bytes, manifest says {art.size}")
            continue
        digest = sha256_file(path)
        if digest != art.sha256:
            problems.append(f"{art.path}: sha256 {digest}, manifest says {art.sha256}")
    return problems


DATA_DIR_ENV = "XCP_PROVISION_DATA_DIR"


def default_releases_dir() -> Path:
    """``<data-dir>/releases``: the server, the CLI and the builders agree without flags."""
    return Path(os.environ.get(DATA_DIR_ENV) or "./data") / "releases"


def list_releases(releases_dir: Path) -> list[Manifest]:
    """Every release under ``releases_dir``, by name; a broken manifest raises with its path."""
    releases_dir = Path(releases_dir)
    if not releases_dir.is_dir():
        return []
    return [load(child) for child in sorted(releases_dir.iterdir()) if (child / MANIFEST).is_file()]


def remove(releases_dir: Path, name: str) -> Path:
    """Delete release ``name`` with its files; refuses anything that is not a release directory."""
    if not name or "/" in name or name in {".", ".."}:
        raise ReleaseError(f"{name!r} is not a release name")
    release_dir = Path(releases_dir) / name
    if not (release_dir / MANIFEST).is_file():
        raise ReleaseError(f"no release {name!r} in {releases_dir}")
    shutil.rmtree(release_dir)
    return release_dir


def add_artefacts(
    release_dir: Path,
    artefacts: list[Artefact],
    *,
    version: str,
    notes: dict[str, str] | None = None,
) -> Manifest:
    """Put artefacts into the release at ``release_dir``, creating its manifest if needed.

    Separate builders (hypervisor, dom0, installer) fill one release this way: an artefact
    replaces the one of the same kind, the others stay, and notes merge. The release takes its
    name from the directory; an existing release keeps its version.
    """
    release_dir = Path(release_dir)
    release_dir.mkdir(parents=True, exist_ok=True)
    kinds = {art.kind for art in artefacts}
    if (release_dir / MANIFEST).is_file():
        old = load(release_dir)
        kept = tuple(art for art in old.artefacts if art.kind not in kinds)
        manifest = Manifest(
            name=old.name,
            version=old.version,
            created=now(),
            artefacts=kept + tuple(artefacts),
            notes={**old.notes, **(notes or {})},
        )
    else:
        manifest = Manifest(
            name=release_dir.resolve().name,
            version=version,
            created=now(),
            artefacts=tuple(artefacts),
            notes=dict(notes or {}),
        )
    save(release_dir, manifest)
    return manifest
