"""``xcp-install`` without a subcommand: one install, unattended or through the TUI.

The answer file comes from ``--answerfile`` (a path or a URL) or, as on XCP-ng's installer, from
the kernel command line (``answerfile=``, ``answerfile_generator=``, or an ``autoinstall``
device). Exit codes: 0 done, 1 failed while working, 2 refused before writing anything. Acting on
``atexit=`` (reboot, poweroff, shell) belongs to the installer image's init, not to this command,
so running it on a workstation never reboots the workstation.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from answerfiles.errors import AnswerFileError
from answerfiles.model import AnswerFile
from common.errors import ReportedError
from installer import cmdline, sources
from installer.backends import run_answers
from installer.errors import RefusedError
from installer.plan import BootMode
from installer.progress import ConsoleReporter, HttpReporter, JsonLinesReporter, Reporter

log = logging.getLogger(__name__)


def install(
    *,
    answerfile: str | None = None,
    target_disk: str | None = None,
    boot_mode: str | None = None,
    json_events: bool = False,
    tui: bool = False,
    target_image: str | None = None,
    plain: bool = False,
) -> int:
    """Run one install; returns the exit code."""
    if tui:
        app = importlib.import_module("installer.tui.app")
        return app.run(target_image=target_image, plain=plain)
    _log_warnings_to_stderr()
    try:
        answers = _answers(answerfile)
        reporters = _reporters(answers, json_events=json_events)
        mode = BootMode(boot_mode) if boot_mode else None
        run_answers(answers, target_disk=target_disk, boot_mode=mode, reporters=reporters)
    except AnswerFileError as exc:
        click.echo(f"the answer file cannot be used:\n{exc}", err=True)
        return 2
    except ReportedError as exc:
        click.echo(f"{'refused' if exc.exit_code == 2 else 'failed'}: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        log.exception("unexpected error")
        click.echo(f"failed: unexpected {type(exc).__name__}: {exc}", err=True)
        return 1
    return 0


def _log_warnings_to_stderr() -> None:
    """Warnings on the terminal; the backend keeps the full debug log for the logs partition."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _answers(location: str | None) -> AnswerFile:
    if location is not None:
        loaded = sources.load_answerfile(location)
    else:
        args = cmdline.boot_args()
        if args.answerfile:
            loaded = sources.load_answerfile(args.answerfile)
        elif args.answerfile_generator:
            loaded = sources.run_generator(args.answerfile_generator)
        else:
            raise RefusedError(
                "no answer file: give --answerfile, boot with answerfile= or "
                "answerfile_generator=, or use --tui"
            )
    parsed = sources.parse_loaded(loaded)
    for warning in parsed.warnings:
        click.echo(str(warning), err=True)
    return parsed.answers


def _reporters(answers: AnswerFile, *, json_events: bool) -> tuple[Reporter, ...]:
    console: Reporter = JsonLinesReporter(sys.stdout) if json_events else ConsoleReporter()
    reporters = [console]
    server = answers.provisioning.server_url
    if server:
        reporters.append(HttpReporter(server, answers.provisioning.token))
    return tuple(reporters)
