"""Pools as the inventory knows them; admission rules live with registration."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Host, Pool
from pxe.store.errors import ConflictError, NotFoundError
from pxe.store.names import check_name, row_id


def create_pool(session: Session, name: str, *, force: bool = False) -> Pool:
    check_name("pool", name)
    if session.scalar(select(Pool).where(Pool.name == name)) is not None:
        raise ConflictError(f"a pool named {name!r} exists")
    pool = Pool(name=name, force=bool(force), secret=secrets.token_urlsafe(24))
    session.add(pool)
    session.flush()
    return pool


def get_pool(session: Session, ref: str | int, *, by_id: bool = True) -> Pool:
    """By name, else by id: a name may be all digits ("42"), and then it is the name.

    ``by_id=False`` for a resource's own path, as :func:`pxe.store.profiles.get_profile`."""
    pool = None
    if isinstance(ref, str):
        pool = session.scalar(select(Pool).where(Pool.name == ref))
    if pool is None and by_id and row_id(ref) is not None:
        pool = session.get(Pool, row_id(ref))
    if pool is None:
        raise NotFoundError("pool", ref)
    return pool


def list_pools(session: Session) -> list[Pool]:
    return list(session.scalars(select(Pool).order_by(Pool.name)))


def pool_members(session: Session, pool: Pool) -> list[Host]:
    return list(session.scalars(select(Host).where(Host.pool_id == pool.id).order_by(Host.id)))


def delete_pool(session: Session, pool: Pool) -> None:
    if pool_members(session, pool):
        raise ConflictError(f"pool {pool.name!r} still has hosts; move or remove them first")
    session.delete(pool)
