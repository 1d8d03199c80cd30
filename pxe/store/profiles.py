"""Profiles: what a host installs (release, answer-file template and variables, kernel
arguments, disk rule, pool), with inheritance from a parent profile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Subquery, select
from sqlalchemy.orm import Session

from pxe.db.models import Host, Pool, Profile, utcnow
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.names import check_name, row_id
from pxe.store.pools import get_pool

FIELDS = ("parent", "release", "template", "variables", "kernel_args", "disk_rule", "pool")


@dataclass(frozen=True)
class EffectiveProfile:
    """A profile with its ancestors folded in: the nearest defined value wins, variables and disk
    rules merge key by key (child over parent), kernel arguments concatenate parent first."""

    name: str
    chain: tuple[str, ...]
    release: str | None = None
    template: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    kernel_args: str = ""
    disk_rule: dict[str, Any] = field(default_factory=dict)
    pool_id: int | None = None


def get_profile(session: Session, ref: str | int, *, by_id: bool = True) -> Profile:
    """By name, else by id: a name may be all digits ("2024"), and then it is the name.

    ``by_id=False`` for a resource's own path (``/profiles/05``): there it names one profile,
    and once that profile is deleted the path must not reach the profile whose id is 5."""
    profile = None
    if isinstance(ref, str):
        profile = session.scalar(select(Profile).where(Profile.name == ref))
    if profile is None and by_id and row_id(ref) is not None:
        profile = session.get(Profile, row_id(ref))
    if profile is None:
        raise NotFoundError("profile", ref)
    return profile


def list_profiles(session: Session) -> list[Profile]:
    return list(session.scalars(select(Profile).order_by(Profile.name)))


def _ancestry(profile: Profile) -> list[Profile]:
    chain, seen = [], set()
    node: Profile | None = profile
    while node is not None:
        if node.id in seen:
            raise ConflictError(f"profile {profile.name!r} inherits from itself")
        seen.add(node.id)
        chain.append(node)
        node = node.parent
    return chain


class _Layer(Protocol):
    """One profile of a chain: an ORM Profile or a row of :func:`chain_rows`."""

    release: str | None
    template: str | None
    pool_id: int | None
    variables: dict[str, Any] | None
    disk_rule: dict[str, Any] | None
    kernel_args: str | None


def _fold(name: str, names: tuple[str, ...], chain: Sequence[_Layer]) -> EffectiveProfile:
    """``chain`` is the profile first, then its ancestors."""
    release = template = None
    pool_id = None
    variables: dict[str, Any] = {}
    disk_rule: dict[str, Any] = {}
    args: list[str] = []
    for node in reversed(chain):  # root first, so children override
        release = node.release or release
        template = node.template or template
        pool_id = node.pool_id or pool_id
        variables.update(node.variables or {})
        disk_rule.update(node.disk_rule or {})
        if node.kernel_args:
            args.append(node.kernel_args.strip())
    return EffectiveProfile(
        name=name,
        chain=names,
        release=release,
        template=template,
        variables=variables,
        kernel_args=" ".join(a for a in args if a),
        disk_rule=disk_rule,
        pool_id=pool_id,
    )


def resolve_profile(profile: Profile) -> EffectiveProfile:
    chain = _ancestry(profile)
    return _fold(profile.name, tuple(p.name for p in chain), chain)


@dataclass(frozen=True)
class ResolvedProfile:
    """An effective profile and the name of its nearest pool (the one ``pool_id`` names)."""

    profile: EffectiveProfile
    pool_name: str | None

    @classmethod
    def of(cls, profile: Profile) -> ResolvedProfile:
        """From a loaded ORM profile (its ancestors and pools are lazy-loaded)."""
        chain = _ancestry(profile)
        nearest_pool = next((p.pool.name for p in chain if p.pool is not None), None)
        return cls(_fold(profile.name, tuple(p.name for p in chain), chain), nearest_pool)

    @classmethod
    def from_rows(cls, profile_id: int, rows: Sequence[Any]) -> ResolvedProfile:
        """From the rows of a query selecting :func:`chain_rows` (in any order)."""
        by_id = {row.profile_id: row for row in rows}
        if profile_id not in by_id:
            raise NotFoundError("profile", profile_id)
        chain, seen = [], set()
        node_id: int | None = profile_id
        while node_id is not None:
            if node_id in seen:
                raise ConflictError(f"profile {by_id[profile_id].profile_name!r} inherits from "
                                    "itself")
            seen.add(node_id)
            chain.append(by_id[node_id])
            node_id = by_id[node_id].parent_id
        nearest_pool = next((row.pool_name for row in chain if row.pool_id is not None), None)
        names = tuple(row.profile_name for row in chain)
        return cls(_fold(names[0], names, chain), nearest_pool)


def chain_rows(first: ColumnElement[Any]) -> Subquery:
    """One row per profile of the ancestry of profile ``first`` (an expression: a bound
    parameter or a scalar subquery), with its pool's name: the whole chain in one query (a
    recursive CTE) instead of a lazy load per ancestor and pool. No row when ``first`` is NULL.
    Columns: profile_id, parent_id, profile_name, release, template, variables, kernel_args,
    disk_rule, pool_id, pool_name (the names :meth:`ResolvedProfile.from_rows` reads).
    """
    ancestry = select(Profile.id).where(Profile.id == first).cte("ancestry", recursive=True)
    parents = select(Profile.parent_id).join(ancestry, Profile.id == ancestry.c.id)
    # UNION, not UNION ALL: a cycle (refused on write, but rows can be edited by hand) ends.
    ancestry = ancestry.union(parents.where(Profile.parent_id.is_not(None)))
    return (
        select(Profile.id.label("profile_id"), Profile.parent_id,
               Profile.name.label("profile_name"), Profile.release, Profile.template,
               Profile.variables, Profile.kernel_args, Profile.disk_rule, Profile.pool_id,
               Pool.name.label("pool_name"))
        .join(ancestry, Profile.id == ancestry.c.id)
        .outerjoin(Pool, Pool.id == Profile.pool_id)
        .subquery("chain")
    )  # fmt: skip


def _dict_field(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"profile {name} must be an object of names to values")
    return dict(value)


def _text_field(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"profile {name} must be a string")
    return value


def _apply(session: Session, profile: Profile, changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInputError(
            f"unknown profile field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}"
        )
    if "parent" in changes:
        parent_ref = changes["parent"]
        parent = get_profile(session, parent_ref) if parent_ref else None
        if parent is not None and profile in _ancestry(parent):
            raise ConflictError(f"profile {profile.name!r} cannot inherit from itself")
        profile.parent = parent
    if "release" in changes:
        release = _text_field("release", changes["release"])
        profile.release = check_name("release", release) if release else None
    if "template" in changes:
        profile.template = _text_field("template", changes["template"])
    if "variables" in changes:
        profile.variables = _dict_field("variables", changes["variables"])
    if "disk_rule" in changes:
        profile.disk_rule = _dict_field("disk_rule", changes["disk_rule"])
    if "kernel_args" in changes:
        profile.kernel_args = _text_field("kernel_args", changes["kernel_args"]) or ""
    if "pool" in changes:
        pool_ref = changes["pool"]
        pool: Pool | None = get_pool(session, pool_ref) if pool_ref else None
        profile.pool = pool
        profile.pool_id = pool.id if pool else None


def create_profile(session: Session, name: str, **fields: Any) -> Profile:
    check_name("profile", name)
    if session.scalar(select(Profile).where(Profile.name == name)) is not None:
        raise ConflictError(f"a profile named {name!r} exists")
    profile = Profile(name=name, variables={}, disk_rule={}, kernel_args="")
    session.add(profile)
    _apply(session, profile, fields)
    session.flush()
    return profile


def update_profile(session: Session, profile: Profile, **fields: Any) -> Profile:
    _apply(session, profile, fields)
    profile.updated_at = utcnow()
    session.flush()
    return profile


def delete_profile(session: Session, profile: Profile) -> None:
    children = session.scalars(select(Profile.name).where(Profile.parent_id == profile.id)).all()
    if children:
        raise ConflictError(f"profile {profile.name!r} is the parent of {', '.join(children)}")
    users = session.scalar(select(Host.id).where(Host.profile_id == profile.id).limit(1))
    if users is not None:
        raise ConflictError(f"profile {profile.name!r} is assigned to hosts; reassign them first")
    # Not silently with its selectors: they decide which new hosts get it.
    if profile.selectors:
        raise ConflictError(
            f"profile {profile.name!r} has {len(profile.selectors)} selector(s); remove them first"
        )
    session.delete(profile)
