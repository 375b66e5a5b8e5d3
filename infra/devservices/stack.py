"""Several dev services started and stopped together."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from infra.devservices.broker_users import BrokerUser
from infra.devservices.common import DEFAULT_TOPIC_PREFIX, SERVICE_NAMES, _is_root, _log
from infra.devservices.configured_mosquitto import ConfiguredMosquitto
from infra.devservices.mosquitto import Mosquitto
from infra.devservices.postgres import Postgres
from infra.devservices.s3 import S3Identity, S3Server
from infra.devservices.service import Service

# --------------------------------------------------------------------------------------------
# Container


@dataclass
class Services:
    """Any subset of the three services, sharing one state directory (``<dir>/<service>``).

    ``start()`` starts them in order and, if one fails, closes those already started.

    ``registry``: a fleet registry directory (``footfall-aggregator fleet ...``). The broker is
    then the deployment's own (``infra/mosquitto/mosquitto.conf``, on one TLS listener) reading
    the registry's generated password and ACL files where they are, so provisioning commands
    with ``--reload-pid-file <state>/mosquitto/mosquitto.pid`` act on it exactly as on a
    production broker; ``broker_users`` and ``topic_prefix`` do not apply.
    """

    only: Iterable[str] = SERVICE_NAMES
    state_dir: Path | None = None
    keep: bool = False
    broker_users: Iterable[BrokerUser] | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    s3_identities: Iterable[S3Identity] | None = None
    s3_buckets: Iterable[str] = ()
    pg_user: str = "footfall"
    pg_password: str | None = None
    pg_database: str = "footfall"
    registry: Path | None = None
    mosquitto: Mosquitto | ConfiguredMosquitto | None = field(default=None, init=False)
    s3: S3Server | None = field(default=None, init=False)
    postgres: Postgres | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        wanted = set(self.only)
        unknown = wanted - set(SERVICE_NAMES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {SERVICE_NAMES}")
        self.only = [name for name in SERVICE_NAMES if name in wanted]
        self._owns_dir = self.state_dir is None
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="devservices-"))
        self.state_dir = Path(self.state_dir).absolute()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o711)

    def _sub(self, name: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / name

    def all(self) -> list[Service]:
        return [s for s in (self.mosquitto, self.s3, self.postgres) if s is not None]

    def start(self) -> Self:
        try:
            if "mosquitto" in self.only and self.mosquitto is None:
                if self.registry is not None:
                    self.mosquitto = _registry_broker(self.registry, self._sub("mosquitto"))
                else:
                    self.mosquitto = Mosquitto(
                        users=self.broker_users,
                        topic_prefix=self.topic_prefix,
                        state_dir=self._sub("mosquitto"),
                        keep=True,
                    )
                self.mosquitto.start()
            if "s3" in self.only and self.s3 is None:
                self.s3 = S3Server(
                    identities=self.s3_identities,
                    buckets=self.s3_buckets,
                    state_dir=self._sub("s3"),
                    keep=True,
                )
                self.s3.start()
            if "postgres" in self.only and self.postgres is None:
                self.postgres = Postgres(
                    user=self.pg_user,
                    password=self.pg_password,
                    database=self.pg_database,
                    state_dir=self._sub("postgres"),
                    keep=True,
                )
                self.postgres.start()
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Stop every process (reverse order); state stays for ``start()`` of each service."""
        for service in reversed(self.all()):
            service.stop()

    def close(self) -> None:
        """Stop everything and delete the state directory if it was a temporary one."""
        for service in reversed(self.all()):
            try:
                service.close()
            except Exception:
                _log.exception("%s: close failed", service.name)
        if self._owns_dir and not self.keep and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        out = {"DEVSERVICES_STATE_DIR": str(self.state_dir)}
        for service in self.all():
            out.update(service.env())
        return out

    def pids(self) -> dict[str, int]:
        return {s.name: s.pid for s in self.all() if s.pid is not None}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


DEPLOYMENT_CONFIG = Path(__file__).resolve().parents[1] / "mosquitto" / "mosquitto.conf"


def _registry_broker(registry: Path, state_dir: Path) -> ConfiguredMosquitto:
    """The deployment's broker on ``registry``'s files. They are generated first (an empty
    registry gets empty ones), given to the broker's group as ``fleet ... --broker-user
    mosquitto`` does, so it can read them after dropping privileges."""
    # Imported here: the other services need no more than the standard library.
    from aggregator.provisioning import Registry, RegistryError

    try:
        reg = Registry(registry.absolute(), broker_user="mosquitto" if _is_root() else None)
        reg.render()
    except RegistryError as exc:
        raise ValueError(f"--registry {registry}: {exc}") from None
    return ConfiguredMosquitto(
        DEPLOYMENT_CONFIG,
        password_file=reg.passwd_file,
        acl_file=reg.acl_file,
        state_dir=state_dir,
        keep=True,
    )
