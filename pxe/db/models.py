"""The inventory's tables: hosts and their MACs, profiles, selectors, pools, events, API tokens,
the audit log.

Alembic migrations in ``pxe/migrations`` create these; the models are the source the
migrations are written from, and a test checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints so migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use pxe.db.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Pool(Base):
    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    master_host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="SET NULL", use_alter=True), nullable=True
    )
    secret: Mapped[str] = mapped_column(String(128))
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    master: Mapped[Host | None] = relationship(foreign_keys=[master_host_id], post_update=True)


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="RESTRICT"), nullable=True
    )
    release: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # A bundled template name (fresh-dhcp, fresh-static, upgrade, restore) or the template text.
    template: Mapped[str | None] = mapped_column(Text, nullable=True)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kernel_args: Mapped[str] = mapped_column(Text, default="")
    disk_rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    parent: Mapped[Profile | None] = relationship(remote_side=[id])
    pool: Mapped[Pool | None] = relationship()
    selectors: Mapped[list[Selector]] = relationship(
        back_populates="profile", cascade="all, delete-orphan"
    )


class Host(Base):
    __tablename__ = "hosts"
    # State first, so it serves every lookup by state; with the token beside it, counting the
    # install slots taken (pxe.store.tokens.slots_taken) reads this index alone, not the table.
    __table_args__ = (Index("ix_hosts_state_token", "state", "install_token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hostname: Mapped[str | None] = mapped_column(String(253), nullable=True)
    smbios_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    serial: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    arch: Mapped[str | None] = mapped_column(String(32), nullable=True)
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), nullable=True
    )
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(Text, default="")
    # The last failure log an installer uploaded, cut to Settings.max_log_bytes.
    failure_log: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    refusal_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # sha256 hex of the one-time install token; the token itself is never stored.
    install_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    token_spent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The install cycle (pxe.boot.decide): when the current token was first used, and the
    # client address it is bound to from then on; install attempts since an operator's last
    # reinstall; since when a ready host waits for an install slot (None: not queued).
    token_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    token_bound_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    install_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The highest sequence number of the installer reports recorded in this install cycle
    # (pxe.store.install_reports): a report numbered no higher is a replay. None since the
    # token's first use.
    report_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # sha256 hex of the registration key its installer left for the first-boot agent
    # (common.registration_key), announced with build-done; None until then, and in a new cycle.
    registration_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    macs: Mapped[list[HostMac]] = relationship(
        back_populates="host", cascade="all, delete-orphan", order_by="HostMac.id", lazy="selectin"
    )
    profile: Mapped[Profile | None] = relationship()
    pool: Mapped[Pool | None] = relationship(foreign_keys=[pool_id])

    @property
    def mac_list(self) -> list[str]:
        return [m.mac for m in self.macs]


class HostMac(Base):
    __tablename__ = "host_macs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    # Normalised: lower case, colon separated (pxe.store.macs.normalise_mac).
    mac: Mapped[str] = mapped_column(String(17), unique=True)

    host: Mapped[Host] = relationship(back_populates="macs")


class Selector(Base):
    """Maps hosts to a profile; several selectors of one profile are OR-ed."""

    __tablename__ = "selectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(16))  # mac | uuid | serial
    pattern: Mapped[str] = mapped_column(String(255))  # shell wildcards: * ? [..]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    profile: Mapped[Profile] = relationship(back_populates="selectors")


class Event(Base):
    __tablename__ = "events"
    # By kind and time: the dashboard lists the latest security events of every host.
    __table_args__ = (
        Index("ix_events_host_id_time", "host_id", "time"),
        Index("ix_events_kind_time", "kind", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # discovered | state | progress | failed | done | registered | security | ... (free, short);
    # a security event's step says which check refused (token-address, register-identity).
    kind: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(128), default="")
    percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    # The installer's sequence number of the report that made this event (None for the rest).
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # admin | viewer (pxe.store.tokens.ROLES); rows made before roles existed are admin.
    role: Mapped[str] = mapped_column(String(16), default="admin", server_default="admin")


class Audit(Base):
    """One admin action (API call, CLI command, dashboard action) and how it ended.

    Never a secret: ``fields`` holds the names of the fields a request set, not their values.
    """

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # The API token's name, or cli:<unix user> for the command line.
    actor: Mapped[str] = mapped_column(String(160))
    # hosts.reinstall, profiles.update, ... or "POST /api/v1/hosts/<int:host_id>/reinstall".
    action: Mapped[str] = mapped_column(String(160))
    target: Mapped[str] = mapped_column(String(255), default="")
    source: Mapped[str] = mapped_column(String(64), default="")  # client address, "" for the CLI
    result: Mapped[str] = mapped_column(Text)  # ok | an HTTP status | the error sentence
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)


class Bmc(Base):
    """How to reach a host's baseboard management controller for power control (pxe.bmc).

    Never the password in clear: ``password_encrypted`` is a Fernet token made with the data
    directory's key (pxe.bmc.crypto). Removed with its host (ON DELETE CASCADE).
    """

    __tablename__ = "bmcs"

    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    driver: Mapped[str] = mapped_column(String(16))  # ipmi | redfish (pxe.bmc.driver.DRIVERS)
    address: Mapped[str] = mapped_column(String(255))  # host name, IP, or a Redfish URL
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(128))
    password_encrypted: Mapped[str] = mapped_column(Text)
    # Redfish only: the system's path (/redfish/v1/Systems/1); empty: the BMC's only system.
    system_path: Mapped[str] = mapped_column(String(255), default="")
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Roll(Base):
    """A rolling reinstall: a group of hosts reinstalled a few at a time (pxe.rolls).

    ``driver`` and ``lease_until`` say which server process drives the roll; another takes it
    over only once the lease ran out, so exactly one process advances a roll at a time.
    """

    __tablename__ = "rolls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # running | done | failed (pxe.store.rolls)
    status: Mapped[str] = mapped_column(String(16), index=True)
    pool: Mapped[str] = mapped_column(String(128), default="")  # the selection, as asked
    profile: Mapped[str] = mapped_column(String(128), default="")
    power: Mapped[bool] = mapped_column(Boolean, default=False)
    max_parallel: Mapped[int] = mapped_column(Integer)
    continue_on_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    # A started host that reached neither installed nor failed after this long has failed.
    host_timeout: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(160))
    message: Mapped[str] = mapped_column(Text, default="")
    driver: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    hosts: Mapped[list[RollHost]] = relationship(
        back_populates="roll", cascade="all, delete-orphan", order_by="RollHost.position"
    )


class RollHost(Base):
    """One host of a roll: waiting, starting (its reinstall being asked), running, done or
    failed. The host's name is kept too, for the roll's history once the host is removed."""

    __tablename__ = "roll_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    roll_id: Mapped[int] = mapped_column(ForeignKey("rolls.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True
    )
    position: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    roll: Mapped[Roll] = relationship(back_populates="hosts")


class RollStep(Base):
    """The history of a roll, one row per step (created, host started, done, failed, ...)."""

    __tablename__ = "roll_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    roll_id: Mapped[int] = mapped_column(ForeignKey("rolls.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True
    )
    step: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")


class HostHealth(Base):
    """What an installed host last reported of its health (pxe.health_report), and the
    credential it reports with.

    ``token_hash`` is the sha256 of the host's report token: handed to its first-boot agent in
    the registration answer (which only the holder of the install token, from the address
    that token is bound to, receives) and replaced at each registration; a reinstall removes
    the row. Apart from the host's row, so that reports every few minutes never move
    ``hosts.updated_at``, which boot decisions compare. Removed with its host.
    """

    __tablename__ = "host_health"

    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # The worst state over the arrays (clean | resyncing | degraded | failed), "none" for a
    # host without software RAID; None until the first report.
    raid_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    raid: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
