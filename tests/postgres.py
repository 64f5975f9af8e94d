"""A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in a temporary
folder, trust authentication on 127.0.0.1 only, and an empty database per test."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import psycopg

from storage.db import dispose_all

BINARIES = "/usr/lib/postgresql/*/bin"  # where Debian's postgresql package puts them
SYSTEM_USER = "postgres"  # initdb refuses root; Debian's package creates this user
SUPERUSER = "postgres"  # the database role the tests connect as
START_TIMEOUT_S = 60
# Durability is worth nothing in a cluster deleted at the end; these make each test's
# CREATE DATABASE and migrations several times faster.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # several engines' pools per test process
    # Not UTC, and not a whole hour off it: times must come back right whatever a server's zone.
    "timezone": "Pacific/Chatham",
}
_names = itertools.count(1)


@dataclass(frozen=True)
class PostgresServer:
    port: int
    folder: Path  # the cluster, its log and its unix socket
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database's URL; dropped afterwards with every connection to it."""
        name = f"test_{os.getpid()}_{next(_names)}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield self.url(name)
        finally:
            dispose_all()  # the store's engines hold pooled connections to it
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self) -> psycopg.Connection:
        # CREATE and DROP DATABASE cannot run inside a transaction.
        return psycopg.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )


def missing() -> str | None:
    """What stops the tests from starting a server, as a sentence saying what to install."""
    if find_binaries() is None:
        return (
            f"The tests start their own PostgreSQL server, but none is installed ({BINARIES}/"
            "initdb and pg_ctl not found). Install Debian's: apt-get install postgresql"
        )
    if os.geteuid() == 0 and SYSTEM_USER not in {user.pw_name for user in pwd.getpwall()}:
        return (
            f"Running as root, the tests start PostgreSQL as the '{SYSTEM_USER}' user, which does "
            "not exist. Debian's package creates it: apt-get install postgresql"
        )
    return None


def find_binaries() -> Path | None:
    """The bin folder of the newest PostgreSQL installed, with initdb and pg_ctl in it."""
    found = [Path(p) for p in glob(BINARIES) if (Path(p) / "pg_ctl").exists()]
    found = [p for p in found if (p / "initdb").exists()]
    return max(found, key=_version, default=None)


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A new cluster, started on a free port and ready for connections; stopped and removed on
    leaving, whatever happened."""
    if problem := missing():
        raise RuntimeError(problem)
    binaries = find_binaries()
    folder = Path(tempfile.mkdtemp(prefix="prompt-lab-pg-"))
    try:
        _give_to_system_user(folder)
        data = folder / "data"
        # C locale: text sorts by code point, as on SQLite; UTF8 whatever the caller's locale.
        initdb = ["-D", data, "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"]
        _run(binaries / "initdb", *initdb, "--no-sync", cwd=folder)
        server = _start(binaries, folder, data)
        try:
            yield server
        finally:
            _run(binaries / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", cwd=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(binaries: Path, folder: Path, data: Path) -> PostgresServer:
    """Start the cluster on a free port; pg_ctl -w returns once it accepts connections."""
    for _attempt in range(3):  # another program may take the free port before the server does
        port = _free_port()
        options = [f"-p {port}", "-h 127.0.0.1", f"-k {folder}"]
        options += [f"-c {name}={value}" for name, value in SETTINGS.items()]
        pg_ctl = ["-D", data, "-l", folder / "server.log", "-w", "-t", str(START_TIMEOUT_S)]
        start = [binaries / "pg_ctl", "start", *pg_ctl, "-o", " ".join(options)]
        started = _run(*start, cwd=folder, check=False)
        if started.returncode == 0:
            return PostgresServer(port=port, folder=folder)
        _run(binaries / "pg_ctl", "stop", "-D", data, "-m", "immediate", cwd=folder, check=False)
        log = (folder / "server.log").read_text(errors="replace")
        if "Address already in use" not in log:
            break
    raise RuntimeError(
        f"The test PostgreSQL server did not start:\n{started.stdout}\n{log[-3000:]}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _give_to_system_user(folder: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(SYSTEM_USER)
    os.chown(folder, user.pw_uid, user.pw_gid)


def _run(*command: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """A PostgreSQL program, as the postgres system user when running as root."""
    argv = [str(part) for part in command]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SYSTEM_USER, "--", *argv]
    done = subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=START_TIMEOUT_S * 2,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}")
    return done


def _version(binaries: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", binaries.parent.name))
