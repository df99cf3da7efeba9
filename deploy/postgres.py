"""A local PostgreSQL server for the Dagster instance of deploy/dagster.yaml: initdb on a folder,
start on a port of 127.0.0.1, wait until it accepts connections, create the database, stop.

    python -m deploy.postgres start FOLDER   # the ODYSSEY_PG_PORT/USER/PASSWORD/DB of the environment
    python -m deploy.postgres stop FOLDER

FOLDER holds the cluster (FOLDER/data) and the server's log (FOLDER/server.log). The server
binaries are those of the folder ODYSSEY_PG_BIN names, else Debian's package `postgresql` (the
newest /usr/lib/postgresql/<version>/bin), else initdb and pg_ctl on the PATH. PostgreSQL refuses to run
as root: as root, initdb and pg_ctl run as the `postgres` system user, who then owns FOLDER. The
server listens on 127.0.0.1 only, over TCP (no Unix socket), with password authentication when a
password is set. Standard library only: it runs before and without Odyssey's environment.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BIN_ENV = "ODYSSEY_PG_BIN"
SYSTEM_USER = "postgres"
HOST = "127.0.0.1"
ENV = {"user": "ODYSSEY_PG_USER", "password": "ODYSSEY_PG_PASSWORD", "host": "ODYSSEY_PG_HOST",
       "port": "ODYSSEY_PG_PORT", "database": "ODYSSEY_PG_DB"}


class PostgresError(RuntimeError):
    """The server could not be set up, started or stopped; the message says why."""


def bin_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where initdb, pg_ctl, pg_isready, psql and createdb are."""
    if environ.get(BIN_ENV):
        return Path(environ[BIN_ENV])
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),  # /usr/lib/postgresql/<version>/bin/pg_ctl
                    key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresError("no PostgreSQL server binaries: install Debian's package `postgresql` (make postgres-server) "
                        f"or set {BIN_ENV} to the folder holding initdb and pg_ctl")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """One PostgreSQL cluster in `folder`, served on 127.0.0.1:`port`, with `database` owned by `user`."""

    folder: Path
    port: int
    user: str
    password: str
    database: str
    bin: Path | None = None

    @classmethod
    def from_environ(cls, folder: Path | str, environ: Mapping[str, str] = os.environ) -> "Server":
        missing = [ENV[k] for k in ("user", "port", "database") if not environ.get(ENV[k])]
        if missing:
            raise PostgresError(f"set {', '.join(missing)} (the values deploy/dagster.yaml reads)")
        return cls(Path(folder), int(environ[ENV["port"]]), environ[ENV["user"]], environ.get(ENV["password"], ""),
                   environ[ENV["database"]], bin_dir(environ))

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def environ(self) -> dict[str, str]:
        """The ODYSSEY_PG_* values that point deploy/dagster.yaml at this server."""
        return {ENV["user"]: self.user, ENV["password"]: self.password, ENV["host"]: HOST,
                ENV["port"]: str(self.port), ENV["database"]: self.database}

    def _tool(self, name: str) -> str:
        path = (self.bin or bin_dir()) / name
        if not os.access(path, os.X_OK):
            raise PostgresError(f"{path} is not an executable: install Debian's package `postgresql` "
                                f"(make postgres-server) or set {BIN_ENV} to the folder holding the server binaries")
        return str(path)

    def _as_owner(self, command: list[str]) -> list[str]:
        """initdb and pg_ctl refuse root: as root they run as the postgres system user."""
        return ["runuser", "-u", SYSTEM_USER, "--", *command] if os.geteuid() == 0 else command

    def _run(self, command: list[str], what: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresError(f"{what} failed: {error}{self._log_tail()}") from error
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip() or "no output"
            raise PostgresError(f"{what} failed (exit code {done.returncode}): {output}{self._log_tail()}")
        return done

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n{self.log}:\n" + "\n".join(tail) if tail else ""

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            owner = pwd.getpwnam(SYSTEM_USER)
        except KeyError as error:
            raise PostgresError(f"running as root, and there is no `{SYSTEM_USER}` system user to run the server as "
                                "(Debian's package `postgresql` creates it)") from error
        os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self.folder.chmod(0o700)
        reach = subprocess.run(self._as_owner(["test", "-w", str(self.folder), "-a", "-x", str(self.folder)]))
        if reach.returncode != 0:
            raise PostgresError(f"the `{SYSTEM_USER}` user cannot reach {self.folder}: a folder above it is closed to "
                                "other users; choose a folder it can reach")

    def init(self) -> None:
        """Create the cluster unless the folder holds one already (its user and password stay)."""
        self._prepare_folder()
        if (self.data / "PG_VERSION").exists():
            return
        command = [self._tool("initdb"), "-D", str(self.data), "-U", self.user, "-E", "UTF8", "--no-locale",
                   "--no-instructions"]
        password_file = self.folder / "initdb.password"
        if self.password:
            password_file.write_text(self.password + "\n")
            if os.geteuid() == 0:
                owner = pwd.getpwnam(SYSTEM_USER)
                os.chown(password_file, owner.pw_uid, owner.pw_gid)
            password_file.chmod(0o600)
            command += [f"--pwfile={password_file}", "--auth=scram-sha-256"]
        else:
            command += ["--auth=trust"]
        try:
            self._run(self._as_owner(command), "initdb")
        finally:
            password_file.unlink(missing_ok=True)

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        status = subprocess.run(self._as_owner([self._tool("pg_ctl"), "status", "-D", str(self.data)]),
                                capture_output=True, text=True)
        return status.returncode == 0

    def start(self, timeout: float = 60) -> "Server":
        """initdb when needed, start the server, wait until it accepts connections, create the database."""
        self.init()
        if not self.running():
            options = f"-c listen_addresses={HOST} -c port={self.port} -c unix_socket_directories=''"
            # its own session: a Ctrl-C meant for the UI does not stop the server under it
            self._run(self._as_owner([self._tool("pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w",
                                      "-t", str(int(timeout)), "-o", options]),
                      f"starting PostgreSQL on {HOST}:{self.port}", timeout=timeout + 10, start_new_session=True)
        self.wait_ready(timeout)
        self.create_database()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        command = [self._tool("pg_isready"), "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", "postgres"]
        while True:
            ready = subprocess.run(command, capture_output=True, text=True)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL on {HOST}:{self.port} not ready after {timeout:.0f} s: "
                                    f"{ready.stdout.strip()}{self._log_tail()}")
            time.sleep(0.2)

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}

    def create_database(self) -> None:
        if self.database == "postgres":
            return
        exists = self._run([self._tool("psql"), "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", "postgres",
                            "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-v", f"name={self.database}"],
                           "looking up the database", input="SELECT 1 FROM pg_database WHERE datname = :'name';\n",
                           env=self._client_env())
        if exists.stdout.strip() != "1":
            self._run([self._tool("createdb"), "-h", HOST, "-p", str(self.port), "-U", self.user, self.database],
                      f"creating the database {self.database}", env=self._client_env())

    def stop(self) -> None:
        """Stop the server if it runs (a fast shutdown: open sessions are ended)."""
        if self.running():
            self._run(self._as_owner([self._tool("pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]),
                      "stopping PostgreSQL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", type=Path, help="holds the cluster (data/) and the server log (server.log)")
    args = parser.parse_args(argv)
    try:
        server = Server.from_environ(args.folder.resolve())
        if args.action == "start":
            server.start()
            print(f"PostgreSQL on {HOST}:{server.port}, database {server.database}, data in {server.data}")
        else:
            server.stop()
    except PostgresError as error:
        print(f"postgres {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
