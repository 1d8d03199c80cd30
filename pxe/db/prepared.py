"""One SELECT compiled once per dialect and run on a pooled DBAPI connection.

For the reads every booting host makes (its answer file, its boot facts): a session, its
transaction events and SQLAlchemy's execution context and result objects cost ~100 us per
call on SQLite, five times the query itself, and as much as rendering and validating the answer
file. Here the statement is still built with SQLAlchemy and compiled by the engine's dialect,
the parameters and results still go through the column types' own processors (JSON, dates);
what is skipped is the machinery around one statement that needs no unit of work.

A single statement sees one consistent snapshot on both backends: SQLite runs it as its own
transaction (pysqlite opens none for a SELECT), PostgreSQL's implicit one is rolled back when
the connection goes back to the pool.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any]


class _Compiled:
    """``statement`` as one dialect runs it."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names {sorted(compiled.escaped_bind_names)} need escaping")
        if compiled.post_compile_params:  # IN lists, literal-execute values: SQL per call
            names = sorted(p.key for p in compiled.post_compile_params)
            raise ValueError(f"parameters {names} are rendered per call: use literal_column")
        self.sql = str(compiled)
        self._construct = compiled.construct_params
        self._positions = compiled.positiontup  # None for a named paramstyle (psycopg)
        self._binds: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._binds[name] = processor
        self._results: list[tuple[int, Processor]] = []
        for i, column in enumerate(statement.selected_columns):
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


class PreparedRead:
    """A read-only ``statement`` whose rows are named tuples (``row.hostname``), as SQLAlchemy's
    rows are; built at import time, compiled on first use for each engine's dialect."""

    def __init__(self, statement: Select[Any]) -> None:
        names = [column.key for column in statement.selected_columns]
        if None in names:
            raise ValueError(f"selected column {names.index(None) + 1} needs a label: rows are "
                             "named tuples")  # fmt: skip
        self._statement = statement
        self._row = namedtuple("Row", names)  # type: ignore[misc]
        self._by_dialect: dict[tuple[type[Dialect], str], _Compiled] = {}

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

    def _compiled(self, dialect: Dialect) -> _Compiled:
        # Tests run SQLite and PostgreSQL engines side by side in one process.
        key = (type(dialect), dialect.paramstyle)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = _Compiled(self._statement, dialect)
        return compiled
