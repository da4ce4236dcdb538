"""A throwaway PostgreSQL server for the tests (`postgres` fixture in tests/conftest.py).

`initdb` into a fresh temp dir, then `postgres` on a free loopback port with its unix socket in
that dir; a database per test; stopped and deleted at the end of the session. PostgreSQL
refuses to run as root, so under root the server runs as Debian's `postgres` user (the
package creates it; `scripts/postgres.sh` installs it). Durability is off (fsync): the tests
check behaviour, not crash safety, and a server that dies with its data loses nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import free_port

try:
    import psycopg
except ImportError:  # the postgres extra is not installed
    psycopg = None

ROLE = "aims"
_names = itertools.count()


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """Where initdb and postgres are: $AIMS_PG_BINDIR, Debian's newest version, or $PATH."""
    if os.environ.get("AIMS_PG_BINDIR"):
        given = Path(os.environ["AIMS_PG_BINDIR"])
        if not (given / "initdb").is_file():
            raise PostgresUnavailable(f"AIMS_PG_BINDIR={given} has no initdb")
        return given
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable("no PostgreSQL server (initdb) found: run scripts/postgres.sh")


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    run_as: dict[str, Any] = field(default_factory=dict)  # Popen user/group under root

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> Any:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=ROLE,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self) -> str:
        """A new empty database; its name (see `url`)."""
        name = f"t{os.getpid()}_{next(_names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _start_once(self) -> bool:
        self.port = free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "200",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **self.run_as
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # most likely the port was taken meanwhile: try another
            try:
                self._admin().close()
                return True
            except psycopg.OperationalError:  # not accepting connections yet
                time.sleep(0.05)
        tail = self.log.read_text()[-3000:]
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start in 30 s:\n{tail}")

    @classmethod
    def start(cls) -> PostgresServer:
        if psycopg is None:
            raise PostgresUnavailable("no psycopg: install the postgres extra (scripts/setup.sh)")
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="aims-pg-"))
        server = cls(bindir=bindir, root=root)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root needs the 'postgres' user: run scripts/postgres.sh"
                ) from exc
            os.chown(root, user.pw_uid, user.pw_gid)
            server.run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {**os.environ, "HOME": str(root), "LC_ALL": "C"}
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(server.data),
                "-U",
                ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            cwd=root,
            env=env,
            **server.run_as,
        )
        if init.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"initdb failed:\n{init.stdout.decode()}{init.stderr.decode()}")
        for _ in range(5):
            if server._start_once():
                return server
        tail = server.log.read_text()[-3000:]
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{tail}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back and disconnect clients), then delete everything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root)
