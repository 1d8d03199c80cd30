"""Admin commands that change the inventory keep an audit row, as API calls do.

The row goes into the command's own transaction, so a change is never stored without it; a
command the store refuses gets its row (with the reason) in a transaction of its own.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy.orm import Session

from pxe.cli.admin import settings_for
from pxe.db.session import open_database
from pxe.store.audit import record, redact
from pxe.store.errors import StoreError


def cli_actor() -> str:
    """``cli:<unix user>`` of the process's real user id (not $USER, which anyone can set)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"cli:{name}"


@dataclass
class Work:
    """The session a command writes through, and what its audit row will say."""

    session: Session
    target: str
    fields: list[str] = field(default_factory=list)


@contextmanager
def audited_session(
    config_file: Path | None,
    data_dir: Path | None,
    action: str,
    target: str = "",
    *,
    fields: Iterable[str] = (),
    hide: Iterable[str] = (),
) -> Iterator[Work]:
    """Like ``session_for``, plus the audit row of ``action`` on ``target``. ``hide`` are the
    values given that may be secret (template variables...): never copied into the audit."""
    database = open_database(settings_for(config_file, data_dir))
    work = Work(database.session(write=True), target, list(fields))
    actor = cli_actor()
    try:
        yield work
        record(work.session, actor=actor, action=action, target=work.target, fields=work.fields)
        work.session.commit()
    except StoreError as exc:
        work.session.rollback()
        reason = redact(str(exc), hide=hide, keep={work.target, *work.fields})
        with database.scope(write=True) as session:
            record(
                session,
                actor=actor,
                action=action,
                target=work.target,
                result=f"{exc.status} {reason}",
                fields=work.fields,
            )
        raise click.ClickException(str(exc)) from exc
    except BaseException:
        work.session.rollback()
        raise
    finally:
        work.session.close()
