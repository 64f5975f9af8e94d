"""The database connection: one engine per URL per process, SQLite tuned for several writers,
PostgreSQL through psycopg, and the schema brought up to date by migrations before first use."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import PromptLabError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_URL = f"sqlite:///{DATA_DIR / 'prompt_lab.sqlite'}"
ENV_VAR = "PROMPT_LAB_DB"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 5000  # measured: no "database is locked" with 4 writers at this value
CONNECT_TIMEOUT_S = 10  # a server that does not answer is reported, not waited on for minutes
# Any fixed number: PostgreSQL advisory locks are per database, so this one names "migrating".
MIGRATION_LOCK_KEY = 0x50524F4D50544C42  # "PROMPTLB" in ASCII
PLAIN_POSTGRESQL = ("postgresql", "postgres")  # without a driver SQLAlchemy would ask for psycopg2
LIBPQ_DRIVERS = ("psycopg", "psycopg2")  # those that take libpq's connect_timeout

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(url: str | None = None) -> str:
    """The URL given, else $PROMPT_LAB_DB, else the SQLite file in data/."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def parse_database_url(url: str) -> URL:
    """`url` as SQLAlchemy's URL, a PostgreSQL one with its driver (psycopg) named."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        shown = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)  # never echo a password
        raise PromptLabError(
            f"'{shown}' is not a database URL (e.g. sqlite:///path.db or "
            "postgresql://user@host:5432/prompt_lab)."
        ) from exc
    if parsed.drivername in PLAIN_POSTGRESQL:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url`, migrated to the newest schema."""
    url = database_url(url)
    with _lock:
        if url not in _engines:
            engine = _create(url)
            migrate(engine)
            _engines[url] = engine
        return _engines[url]


def sessions(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: committed if it ends normally, rolled back if not."""
    with sessions(url)() as session, session.begin():
        yield session


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _create(url: str) -> Engine:
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _create_server_engine(
            parsed, shown=make_url(url).render_as_string(hide_password=True)
        )
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise PromptLabError(f"The folder for the database does not exist: {folder}")
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers unblocked while a run writes; busy_timeout makes writers wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_server_engine(url: URL, *, shown: str) -> Engine:
    """An engine for a database server (PostgreSQL), refused with a sentence if unreachable;
    `shown` is the URL as the user wrote it, without its password."""
    connect_args = {}
    if url.get_driver_name() in LIBPQ_DRIVERS and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as exc:
        raise PromptLabError(
            f"The driver for {url.drivername} URLs is not installed ({exc.name}); "
            "`make setup` installs psycopg, the one for PostgreSQL."
        ) from exc
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_in_utc, insert=True)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        raise _unreachable(url, shown, exc) from exc
    return engine


def _postgresql_in_utc(dbapi_connection, _record) -> None:
    # Times come back in the session's zone: UTC shows them as SQLite's (stored in UTC) read,
    # whatever zone the server is set to.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.commit()


def _unreachable(url: URL, shown: str, exc: OperationalError) -> PromptLabError:
    """What went wrong opening a server's database, naming host, port and database."""
    host = url.host or url.query.get("host") or "localhost"
    port = url.port or (5432 if url.get_backend_name() == "postgresql" else "default")
    # libpq: 'connection failed: connection to server at "h", port 1 failed: <why>'
    reason = str(exc.orig).strip().splitlines()[0].rsplit("failed: ", 1)[-1]
    reason = re.sub(r"^(FATAL|ERROR):\s+", "", reason).strip().rstrip(".")
    if url.password:
        reason = reason.replace(str(url.password), "***")
    message = (
        f"Cannot open the database '{shown}' (database '{url.database}' on {host}, port {port}): "
        f"{reason}."
    )
    if "does not exist" in reason and f'"{url.database}"' in reason:
        message += f" Create it first, e.g. `createdb -h {host} -p {port} {url.database}`."
    elif "refused" in reason or "timeout" in reason:
        message += " Is the server running there and accepting TCP/IP connections?"
    return PromptLabError(message)


def migrate(engine: Engine) -> None:
    """Apply every pending migration; processes starting at once take turns."""
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction commits the migrations; the next process then finds
            # the schema at head and has nothing to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        command.upgrade(alembic_config(connection), "head")


def alembic_config(connection: Connection) -> Config:
    """Alembic's settings for running migrations on this open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking and busy_timeout have to do
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
