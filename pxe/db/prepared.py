"""One statement compiled once per dialect and run on a pooled DBAPI connection.

For the reads every booting host makes (its answer file, its boot facts): a session, its
transaction events and SQLAlchemy's execution context and result objects cost ~100 us per
call on SQLite, five times the query itself, and as much as rendering and validating the answer
file. Here the statement is still built with SQLAlchemy and compiled by the engine's dialect,
the parameters and results still go through the column types' own processors (JSON, dates);
what is skipped is the machinery around one statement that needs no unit of work.

A single statement sees one consistent snapshot on both backends: SQLite runs it as its own
transaction (pysqlite opens none for a SELECT), PostgreSQL's implicit one is rolled back when
the connection goes back to the pool.

The same holds for the one conditional write every cold answer file makes (its token claimed):
building the UPDATE anew cost more than a third of the render, and compiling it once is all
the difference; it is committed as its own transaction.

Where several statements must share one transaction (a registration's reads, then its write),
:func:`transaction` holds one on a pooled connection and runs them through :class:`Transaction`:
through SQLAlchemy's connection, each of a registration's statements cost ~40 us around a
~5 us query.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, Insert, Select, Update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any]


class _Compiled:
    """``statement`` as one dialect runs it."""

    def __init__(
        self,
        statement: Select[Any] | Update | Insert,
        dialect: Dialect,
        columns: tuple[Any, ...],
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names {sorted(compiled.escaped_bind_names)} need escaping")
        if compiled.post_compile_params:  # IN lists, literal-execute values: SQL per call
            names = sorted(p.key for p in compiled.post_compile_params)
            raise ValueError(f"parameters {names} are rendered per call: use literal_column")
        prefetched = [*compiled.insert_prefetch, *compiled.update_prefetch]
        if prefetched:  # computed by the execution context, which a raw cursor does not have
            names = sorted(column.key for column in prefetched)
            raise ValueError(f"columns {names} take a Python default: set them in the statement")
        self.sql = str(compiled)
        self._construct = compiled.construct_params
        self._positions = compiled.positiontup  # None for a named paramstyle (psycopg)
        self._binds: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._binds[name] = processor
        self._results: list[tuple[int, Processor]] = []
        for i, column in enumerate(columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self._results.append((i, processor))

    def parameters(self, values: dict[str, Any]) -> dict[str, Any] | list[Any]:
        built = self._construct(values)
        for name, processor in self._binds.items():
            built[name] = processor(built[name])
        if self._positions is None:
            return built
        return [built[name] for name in self._positions]

    def row(self, raw: tuple[Any, ...]) -> list[Any]:
        values = list(raw)
        for i, processor in self._results:
            values[i] = processor(values[i])
        return values


class _PerDialect:
    """A statement built at import time, compiled on first use for each engine's dialect."""

    def __init__(self, statement: Select[Any] | Update | Insert, columns: tuple[Any, ...]) -> None:
        self._statement = statement
        self._columns = columns
        self._by_dialect: dict[tuple[type[Dialect], str], _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        # Tests run SQLite and PostgreSQL engines side by side in one process.
        key = (type(dialect), dialect.paramstyle)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = _Compiled(self._statement, dialect, self._columns)
            self._by_dialect[key] = compiled
        return compiled


class PreparedRead(_PerDialect):
    """A read-only ``statement`` whose rows are named tuples (``row.hostname``), as SQLAlchemy's
    rows are."""

    def __init__(self, statement: Select[Any]) -> None:
        names = [column.key for column in statement.selected_columns]
        if None in names:
            raise ValueError(f"selected column {names.index(None) + 1} needs a label: rows are "
                             "named tuples")  # fmt: skip
        super().__init__(statement, tuple(statement.selected_columns))
        self._row = namedtuple("Row", names)  # type: ignore[misc]

    def rows(self, engine: Engine, **values: Any) -> list[Any]:
        """Every row of the statement with ``values`` bound, read on one pooled connection."""
        compiled = self._compiled(engine.dialect)
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.sql, compiled.parameters(values))
                fetched = cursor.fetchall()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, which ends any transaction
        return [self._row(*compiled.row(raw)) for raw in fetched]

    def first(self, engine: Engine, **values: Any) -> Any | None:
        rows = self.rows(engine, **values)
        return rows[0] if rows else None


class PreparedWrite(_PerDialect):
    """A writing statement without results (a conditional UPDATE, an INSERT whose every value is
    a bound parameter), run as its own transaction or in a :class:`Transaction`.

    Raises the driver's errors wrapped as SQLAlchemy wraps them, so the write retries of
    :mod:`pxe.db.write_retry` tell a busy database from a wrong statement as they do for
    statements run through the engine.
    """

    def __init__(self, statement: Update | Insert) -> None:
        super().__init__(statement, ())

    def run(self, engine: Engine, **values: Any) -> int:
        """Run the statement with ``values`` bound and commit it; returns the rows it changed."""
        dialect = engine.dialect
        compiled = self._compiled(dialect)
        parameters = compiled.parameters(values)
        connection = engine.raw_connection()
        try:
            with _wrapped(dialect, compiled.sql, parameters, connection):
                cursor = connection.cursor()
                try:
                    cursor.execute(compiled.sql, parameters)
                    changed = cursor.rowcount
                finally:
                    cursor.close()
                connection.commit()  # SQLite (no transaction open here): nothing to do
        finally:
            connection.close()  # back to the pool, which ends any transaction
        return changed


class Transaction:
    """Prepared statements run one after another in the transaction :func:`transaction` holds."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self._cursor = connection.cursor()
        self._dialect = dialect

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``: for a statement each dialect builds its own way."""
        return self._dialect.name

    def rows(self, statement: PreparedRead, **values: Any) -> list[Any]:
        compiled = statement._compiled(self._dialect)
        parameters = compiled.parameters(values)
        with _wrapped(self._dialect, compiled.sql, parameters, self._connection):
            self._cursor.execute(compiled.sql, parameters)
            fetched = self._cursor.fetchall()
        return [statement._row(*compiled.row(raw)) for raw in fetched]

    def first(self, statement: PreparedRead, **values: Any) -> Any | None:
        rows = self.rows(statement, **values)
        return rows[0] if rows else None

    def run(self, statement: PreparedWrite, **values: Any) -> int:
        """Run a write; returns the rows it changed."""
        compiled = statement._compiled(self._dialect)
        parameters = compiled.parameters(values)
        with _wrapped(self._dialect, compiled.sql, parameters, self._connection):
            self._cursor.execute(compiled.sql, parameters)
            return self._cursor.rowcount


@contextmanager
def transaction(
    engine: Engine, *, write: bool, turn: AbstractContextManager[None] | None = None
) -> Iterator[Transaction]:
    """One transaction on a pooled connection: committed when the block ends, rolled back when
    it raises. On SQLite, whose connections run in autocommit mode here (:mod:`pxe.db.session`)
    it is begun explicitly, and a writer's takes the write lock first (``IMMEDIATE``), as
    :meth:`pxe.db.session.Database.scope` does; PostgreSQL's driver begins one by itself.

    ``turn`` (a writer's place in :mod:`pxe.db.writer_queue`) is held from the begin to the
    commit only: taking the connection from the pool and giving it back are Python work no
    other writer needs to wait for."""
    dialect = engine.dialect
    connection = engine.raw_connection()
    try:
        with turn if turn is not None else nullcontext():
            if dialect.name == "sqlite":
                begin = "BEGIN IMMEDIATE" if write else "BEGIN"
                with _wrapped(dialect, begin, (), connection):
                    connection.cursor().execute(begin)
            try:
                yield Transaction(connection, dialect)
            except BaseException:
                _roll_back(connection)
                raise
            with _wrapped(dialect, "COMMIT", (), connection):
                connection.commit()
    finally:
        connection.close()  # back to the pool, which ends any transaction left open


def _roll_back(connection: Any) -> None:
    """Roll back after a failure; a connection that cannot (the server went away) leaves the
    pool, and the failure that matters stays the one being raised."""
    if not connection.is_valid:  # invalidated already, where the failure was met
        return
    try:
        connection.rollback()
    except Exception:
        connection.invalidate()


@contextmanager
def _wrapped(dialect: Dialect, sql: str, parameters: Any, connection: Any = None) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (IntegrityError, OperationalError...),
    marked as the connection lost when the dialect says so, as SQLAlchemy's own connection
    does: the web layer answers that with 503, not 500 (:mod:`pxe.db.write_retry`)."""
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        lost = connection is not None and dialect.is_disconnect(
            exc, connection.dbapi_connection, None
        )
        if lost:
            connection.invalidate()
        raise DBAPIError.instance(
            sql,
            parameters,
            exc,
            dialect.loaded_dbapi.Error,
            dialect=dialect,
            connection_invalidated=lost,
        ) from exc
