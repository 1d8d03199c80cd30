"""The one place where external commands start.

Like curtin's ``util.subp``: every ``mkfs``, ``sgdisk``, ``losetup`` and ``grub-install`` of the
project passes through :func:`run`, so a failure always arrives as a :class:`CommandError`
carrying the command, its exit code and its stderr, and tests can watch or forbid what runs with
:func:`guarded`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from common.errors import CommandError

log = logging.getLogger(__name__)

Guard = Callable[[list[str]], None]
_guards: list[Guard] = []


@dataclass(frozen=True)
class Result:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str


def _checked(cmd: Sequence[str | os.PathLike[str]]) -> list[str]:
    argv = [os.fspath(part) for part in cmd]
    for guard in _guards:
        guard(argv)
    return argv


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input: str | bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> Result:
    """Run ``cmd`` (never through a shell) and return its text output.

    A non-zero exit raises :class:`CommandError` unless ``check`` is false.
    """
    argv = _checked(cmd)
    log.debug("run: %s", " ".join(argv))
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env}
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=not isinstance(input, bytes),
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, f"timed out after {timeout} s") from exc
    stdout = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stderr, stdout)
    return Result(argv, proc.returncode, stdout, stderr)


def start(
    cmd: Sequence[str | os.PathLike[str]], **popen_kwargs: object
) -> subprocess.Popen[bytes]:
    """Start a long-running or streaming command (a server, a pipe) under the same guards.

    The caller owns the process: it must wait for it and check its exit code.
    """
    argv = _checked(cmd)
    log.debug("start: %s", " ".join(argv))
    try:
        return subprocess.Popen(argv, **popen_kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from exc


@contextlib.contextmanager
def guarded(guard: Guard) -> Iterator[None]:
    """Call ``guard(argv)`` before every command in this block; it may raise to forbid it."""
    _guards.append(guard)
    try:
        yield
    finally:
        _guards.remove(guard)
