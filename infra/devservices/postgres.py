"""A throwaway PostgreSQL cluster."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.devservices.common import (
    _MAX_SOCKET_DIR_LEN,
    LOOPBACK,
    MissingBinaryError,
    _account,
    _check_reachable,
    _chown,
    _is_root,
    _log,
    _run,
    _wait_until,
    free_ports,
    postgres_bindir,
)
from infra.devservices.service import Service

# --------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres(Service):
    """A throwaway PostgreSQL cluster on 127.0.0.1 with one password user and one database.

    ``initdb`` refuses to run as root, so as root both it and the server run as the ``postgres``
    user. The server is started directly rather than through ``pg_ctl start``: pg_ctl daemonizes
    it, and after a kill -9 the orphan stays a zombie until init gets round to reaping it (a second
    or two here); meanwhile its PID looks alive and PostgreSQL refuses to start over its own
    ``postmaster.pid``.
    """

    name = "postgres"
    # SIGINT is "fast" shutdown; SIGTERM ("smart") would wait for every client to disconnect.
    stop_signal = signal.SIGINT

    def __init__(
        self,
        *,
        user: str = "footfall",
        password: str | None = None,
        database: str = "footfall",
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.bindir = postgres_bindir()
        self._account = _account("postgres") if _is_root() else None
        if _is_root() and self._account is None:
            raise MissingBinaryError(
                "running as root but there is no `postgres` user to run the server as; install "
                "the Debian package `postgresql-15` (it creates the user)"
            )
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        for label, value in (("user", user), ("database", database)):
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
                raise ValueError(f"{label} {value!r}: use lower-case letters, digits and '_'")
        self.host = LOOPBACK
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.database = database
        self.superuser = "postgres"
        if port is None:
            (self.port,) = free_ports(1)
        else:
            self.port = port
            self._ports_auto = False
        # fsync off: a process crash (kill -9) loses nothing, only an OS crash would, and
        # throwaway clusters are not worth the disk flushes.
        self.settings = {"fsync": "off", "listen_addresses": self.host, **(settings or {})}
        self.data_dir = self.state_dir / "data"
        sock = self.state_dir / "sock"
        if len(str(sock)) > _MAX_SOCKET_DIR_LEN:
            sock = Path(tempfile.mkdtemp(prefix="pgsock-"))
            self._extra_dirs = [sock]
        else:
            self._extra_dirs = []
        self.socket_dir = sock
        _check_reachable(self.state_dir, "postgres", self._account)

    @property
    def dsn(self) -> str:
        """libpq/psycopg connection string for the app user over TCP."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return (
            f"host={self.host} port={self.port} dbname={database} "
            f"user={self.user} password={self.password}"
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def admin_connect(self, database: str = "postgres") -> Any:
        """psycopg autocommit connection as the superuser over the unix socket (trust auth)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=database,
            autocommit=True,
            connect_timeout=3,
        )

    def create_database(self, name: str) -> None:
        """Create an empty database owned by the app user."""
        with self.admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
            "POSTGRES_DSN": self.dsn,
            "DATABASE_URL": self.url,
        }

    def _ports(self) -> list[int]:
        return [self.port]

    def _pick_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {
            "user": self._account.uid,
            "group": self._account.gid,
            "extra_groups": [],
            "env": {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "HOME": str(self.state_dir),
            },
        }

    def _prepare(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        _chown(self.socket_dir, self._account, 0o700)
        self.log_file.touch()
        _chown(self.log_file, self._account, 0o640)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-done initdb
        _chown(self.state_dir, self._account)
        cmd = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        if self._account is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        t0 = time.monotonic()
        _run(cmd, what="initdb", cwd=self.state_dir)
        _log.info("postgres: initdb took %.2fs", time.monotonic() - t0)

    def _command(self) -> list[str]:
        cmd = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        import psycopg

        last_error = "no answer"

        def answers() -> bool:
            nonlocal last_error
            try:
                with self.admin_connect() as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error as exc:
                last_error = str(exc).strip()
                return False
            return True

        if not _wait_until(
            answers, timeout=deadline - time.monotonic(), interval=0.05, alive=self.is_running
        ):
            return last_error
        return None

    def _after_ready(self) -> None:
        import psycopg
        from psycopg import sql

        with self.admin_connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            has_db = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not has_db:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(self.database), sql.Identifier(self.user)
                    )
                )
        # The password path over TCP is what clients use: prove it works.
        with psycopg.connect(self.dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        super().close()
        # Only sockets live there; they are made anew on every start.
        for directory in self._extra_dirs:
            shutil.rmtree(directory, ignore_errors=True)
