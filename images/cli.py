"""``xcp-provision images``: build, list, verify and remove releases.

A release directory collects artefacts from several builders: run ``hypervisor``, ``dom0`` and
``installer`` with the same ``--out`` and they fill one manifest. Releases live in
``<data-dir>/releases`` (data dir: ``$XCP_PROVISION_DATA_DIR`` or ``./data``); builds are cached
in ``$XCP_PROVISION_CACHE`` (default ``/var/cache/xcp-provision``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from common import release
from common.errors import ReportedError
from common.release_signature import SignatureError
from images import dom0 as dom0_build
from images import signing, xen
from images.bootimage import build as bootimage
from images.cache import BuildCache, default_cache_dir
from images.demo import build_demo_release
from images.errors import ImageError

_releases_option = click.option(
    "--releases",
    "releases_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Releases directory (default: <data-dir>/releases).",
)


def _out_option(default_name: str) -> Callable:
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Release directory to create or extend (default <data-dir>/releases/{default_name}).",
    )


_cache_option = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Build cache (default: $XCP_PROVISION_CACHE or /var/cache/xcp-provision).",
)


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Every failure the user can meet reaches them as one sentence, without a traceback."""
    try:
        yield
    except (release.ReleaseError, ImageError, ReportedError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _report(manifest: release.Manifest, out_dir: Path, started: float) -> None:
    click.echo(f"release {manifest.name} in {out_dir} ({time.monotonic() - started:.1f} s)")
    for art in manifest.artefacts:
        click.echo(f"  {art.kind.value:17} {art.path:28} {_human(art.size):>10}  {art.version}")


@click.group()
def images() -> None:
    """Build and manage releases (hypervisor, dom0 image, installer boot image)."""


@images.command("list")
@_releases_option
def list_cmd(releases_dir: Path | None) -> None:
    """List the releases with their artefacts and sizes."""
    releases_dir = releases_dir or release.default_releases_dir()
    with _clear_errors():
        manifests = release.list_releases(releases_dir)
    if not manifests:
        click.echo(f"no releases in {releases_dir}")
        return
    for manifest in manifests:
        total = sum(art.size for art in manifest.artefacts)
        kinds = ", ".join(art.kind.value for art in manifest.artefacts)
        demo = " [demo]" if manifest.notes.get("demo") == "true" else ""
        click.echo(
            f"{manifest.name}{demo}  version {manifest.version}  created {manifest.created}  "
            f"{_human(total)}  ({kinds})"
        )


@images.command()
@click.argument("names", nargs=-1)
@_releases_option
@click.option(
    "--keyring",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Also check each manifest's signature against this keyring, as an installer would.",
)
def verify(names: tuple[str, ...], releases_dir: Path | None, keyring: Path | None) -> None:
    """Check every artefact's size and sha256 against its manifest (all releases by default)."""
    releases_dir = releases_dir or release.default_releases_dir()
    with _clear_errors():
        targets = list(names) or [m.name for m in release.list_releases(releases_dir)]
        if not targets:
            raise click.ClickException(f"no releases in {releases_dir}")
        failed = False
        for name in targets:
            problems = release.verify(releases_dir / name)
            if keyring is not None:
                problems += _signature_problems(releases_dir / name, keyring)
            for problem in problems:
                click.echo(f"{name}/{problem}", err=True)
            failed = failed or bool(problems)
            click.echo(f"{name}: {'CORRUPT' if problems else 'ok'}")
    if failed:
        raise SystemExit(1)


def _signature_problems(release_dir: Path, keyring: Path) -> list[str]:
    try:
        signed = signing.check_release(release_dir, keyring)
    except SignatureError as exc:
        return [f"{release.SIGNATURE}: {exc.reason}"]
    click.echo(f"{release_dir.name}: signed by {signed.fingerprint}")
    return []


@images.command()
@click.argument("name")
@click.option("--key", required=True, help="The site signing key: its fingerprint (or user id).")
@click.option(
    "--gnupg-home",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="GnuPG home holding the secret key (default: $GNUPGHOME or ~/.gnupg).",
)
@_releases_option
def sign(name: str, key: str, gnupg_home: Path | None, releases_dir: Path | None) -> None:
    """Sign a release's manifest (manifest.json.asc) with the site's OpenPGP key."""
    releases_dir = releases_dir or release.default_releases_dir()
    with _clear_errors():
        signed = signing.sign_release(releases_dir / name, key, gnupg_home)
    click.echo(f"signed {name}: {releases_dir / name / release.SIGNATURE} by {signed.fingerprint}")


@images.command()
@click.argument("name")
@_releases_option
def remove(name: str, releases_dir: Path | None) -> None:
    """Delete a release and its files."""
    releases_dir = releases_dir or release.default_releases_dir()
    with _clear_errors():
        path = release.remove(releases_dir, name)
    click.echo(f"removed {path}")


@images.command()
@_out_option("debian12")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Import this xen.gz instead of Debian's.",
)
@click.option("--version", "version", default="", help="With --from: the version to record.")
@_cache_option
def hypervisor(
    out_dir: Path | None, from_file: Path | None, version: str, cache_dir: Path | None
) -> None:
    """Add Xen (Debian's xen-hypervisor-4.17-amd64, or --from FILE) to a release."""
    out_dir = out_dir or release.default_releases_dir() / "debian12"
    started = time.monotonic()
    with _clear_errors():
        if from_file:
            image = xen.import_xen(from_file, version)
        else:
            image, built = xen.fetch_xen(BuildCache(cache_dir or default_cache_dir()))
            click.echo(f"{'fetched' if built else 'cached'}: {image.source}")
        manifest = xen.add_to_release(out_dir, image)
    _report(manifest, out_dir, started)


@images.command()
@_out_option("demo")
@_cache_option
def demo(out_dir: Path | None, cache_dir: Path | None) -> None:
    """Make a small demo release in seconds (placeholders, labelled; Xen real when cached)."""
    out_dir = out_dir or release.default_releases_dir() / "demo"
    started = time.monotonic()
    with _clear_errors():
        manifest = build_demo_release(out_dir, BuildCache(cache_dir or default_cache_dir()))
    _report(manifest, out_dir, started)
    click.echo(f"placeholders: {manifest.notes.get('placeholders') or 'none'}")


@images.command()
@_out_option("debian12")
@_cache_option
def dom0(out_dir: Path | None, cache_dir: Path | None) -> None:
    """Add the dom0 image (Debian 12 by debootstrap: Linux, Xen tools, SSH, our agent)."""
    out_dir = out_dir or release.default_releases_dir() / "debian12"
    started = time.monotonic()
    with _clear_errors():
        image, built = dom0_build.build_dom0(BuildCache(cache_dir or default_cache_dir()))
        click.echo(
            f"{'built' if built else 'cached'}: dom0 {image.version} "
            f"(built in {image.build_seconds:.0f} s, rootfs {_human(image.rootfs.stat().st_size)})"
        )
        manifest = dom0_build.add_to_release(out_dir, image)
    _report(manifest, out_dir, started)


@images.command()
@_out_option("debian12")
@_cache_option
@click.option(
    "--release-keyring",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The site's public release key (gpg --export): the image then refuses unsigned "
    "releases unless an answer file turns the check off.",
)
def installer(out_dir: Path | None, cache_dir: Path | None, release_keyring: Path | None) -> None:
    """Add the installer boot image (Debian kernel + initramfs running xcp-install)."""
    out_dir = out_dir or release.default_releases_dir() / "debian12"
    started = time.monotonic()
    with _clear_errors():
        if release_keyring is not None:
            for fingerprint in signing.keyring_fingerprints(release_keyring):
                click.echo(f"the image will trust releases signed by {fingerprint}")
        image, built = bootimage.build_installer(
            BuildCache(cache_dir or default_cache_dir()), release_keyring
        )
        click.echo(
            f"{'built' if built else 'cached'}: installer image, kernel {image.kernel_version} "
            f"(built in {image.build_seconds:.0f} s, initrd {_human(image.initrd.stat().st_size)})"
        )
        manifest = bootimage.add_to_release(out_dir, image)
    _report(manifest, out_dir, started)
