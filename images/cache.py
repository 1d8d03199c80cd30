"""A build cache keyed by the inputs of a build.

Real image builds take minutes (debootstrap, apt, compression). The end-to-end lab and CI need
the images every run but their inputs rarely change, so each build is stored under a key made of
exactly what goes into it: the Debian package versions apt would install now and a digest of our
own source files copied into the image. Same inputs, same key, no rebuild; a security update or an
edit to the agent changes the key and the next build runs for real.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from common.runner import run
from images.errors import ImageError

CACHE_ENV = "XCP_PROVISION_CACHE"
DEFAULT_CACHE = Path("/var/cache/xcp-provision")
_DONE = ".complete"
_INPUTS = "inputs.json"
# Older entries of a kind beyond this many are deleted after a new build: a dom0 entry is
# hundreds of MB and only the newest ones are ever looked up.
KEEP_PER_KIND = 2


class CacheError(ImageError):
    """The cache directory cannot be used, or a build did not produce what it promised."""


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """The version apt would install now for each package (``apt-cache policy`` candidate)."""
    names = sorted(set(packages))
    out = run(["apt-cache", "policy", *names]).stdout
    versions: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:"):
            versions[current] = line.split(":", 1)[1].strip()
    missing = [name for name in names if versions.get(name) in (None, "(none)")]
    if missing:
        raise CacheError(
            f"apt has no candidate for {', '.join(missing)}; run apt-get update or check the mirror"
        )
    return versions


def source_digest(paths: Iterable[Path]) -> str:
    """A digest of files and directory trees, by relative name and content."""
    digest = hashlib.sha256()
    for top in sorted(Path(p) for p in paths):
        files = sorted(f for f in top.rglob("*") if f.is_file()) if top.is_dir() else [top]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(top.parent)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def key_of(inputs: dict[str, object]) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class BuildCache:
    root: Path

    def entry(self, kind: str, inputs: dict[str, object]) -> Path:
        return self.root / kind / key_of(inputs)

    def lookup(self, kind: str, inputs: dict[str, object]) -> Path | None:
        path = self.entry(kind, inputs)
        return path if (path / _DONE).is_file() else None

    def latest(self, kind: str) -> Path | None:
        """The most recently completed entry of a kind, whatever its inputs (for the demo)."""
        done = [p.parent for p in (self.root / kind).glob(f"*/{_DONE}")]
        return max(done, key=lambda p: (p / _DONE).stat().st_mtime) if done else None

    def ensure(
        self, kind: str, inputs: dict[str, object], build: Callable[[Path], None]
    ) -> tuple[Path, bool]:
        """The entry for these inputs, running ``build(dir)`` first when absent.

        Returns the entry and whether it was built now. The build writes into a private
        directory that is renamed into place only when it succeeded, so an interrupted build
        never looks complete.
        """
        found = self.lookup(kind, inputs)
        if found:
            return found, False
        final = self.entry(kind, inputs)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache directory {final.parent}: {exc}") from exc
        # One builder per key: a second process (CI, the lab, a developer) waits, then reuses.
        with open(final.parent / f"{final.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.lookup(kind, inputs)
            if found:
                return found, False
            self._build(final, inputs, build)
        self._prune(kind, keep=final)
        return final, True

    @staticmethod
    def _build(final: Path, inputs: dict[str, object], build: Callable[[Path], None]) -> None:
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            build(work)
            (work / _INPUTS).write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
            (work / _DONE).write_text("")
            work.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            os.replace(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _prune(self, kind: str, keep: Path) -> None:
        entries = sorted(
            (p.parent for p in (self.root / kind).glob(f"*/{_DONE}") if p.parent != keep),
            key=lambda p: (p / _DONE).stat().st_mtime,
            reverse=True,
        )
        for old in entries[KEEP_PER_KIND - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
