"""SeaweedFS (`weed mini`) as an S3 server with access keys."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.devservices.common import (
    LOOPBACK,
    _log,
    _port_open,
    _read_from,
    _wait_until,
    free_ports,
    weed_binary,
)
from infra.devservices.service import Service

# --------------------------------------------------------------------------------------------
# SeaweedFS S3


@dataclass(frozen=True)
class S3Identity:
    """An S3 key pair and its SeaweedFS actions (``Admin``, ``Read``, ``Write``, ``List``,
    ``Tagging``, optionally scoped as ``Write:bucket``)."""

    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...] = ("Admin", "Read", "Write", "List", "Tagging")

    def as_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(self.actions),
        }


def default_s3_identities() -> list[S3Identity]:
    return [S3Identity("admin", "AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))]


class S3Server(Service):
    """SeaweedFS ``weed mini`` (master, volume, filer, S3 in one process) requiring access keys.

    The first identity is the admin one that :attr:`access_key` / :attr:`secret_key` and
    :meth:`client` use. Data lives in ``state_dir/data`` and survives stop/start.
    """

    name = "s3"
    region = "us-east-1"
    _BANNER = "Press Ctrl+C to stop"
    # A clean stop takes 1-2 s, but about one in 40 hangs in weed 4.48 (the volume server's
    # HTTP shutdown waits on a connection forever); SIGKILL loses nothing acknowledged.
    stop_timeout = 4.0
    _PORT_NAMES = (
        "s3",
        "s3.grpc",
        "master",
        "master.grpc",
        "volume",
        "volume.grpc",
        "filer",
        "filer.grpc",
        "admin",
        "admin.grpc",
    )

    def __init__(
        self,
        *,
        identities: Iterable[S3Identity] | None = None,
        buckets: Iterable[str] = (),
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        self._weed = weed_binary()
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        self.identities = list(default_s3_identities() if identities is None else identities)
        if not self.identities:
            raise ValueError("S3Server needs at least one identity")
        self.buckets = list(buckets)
        self.host = LOOPBACK
        self._volumes_on_disk = 0
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "s3-identities.json"
        # weed mini has a dozen listeners; every one gets an explicit port, otherwise defaults
        # (8333, 9333, 23646, ...) and "http port + 10000" gRPC ports collide between runs.
        self.ports: dict[str, int] = dict(
            zip(self._PORT_NAMES, free_ports(len(self._PORT_NAMES)), strict=True)
        )

    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def access_key(self) -> str:
        return self.identities[0].access_key

    @property
    def secret_key(self) -> str:
        return self.identities[0].secret_key

    def client(
        self, access_key: str | None = None, secret_key: str | None = None, **config: Any
    ) -> Any:
        """A boto3 S3 client for this endpoint (admin keys unless given), path-style, SigV4."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
            "connect_timeout": 2,
            "read_timeout": 10,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        settings.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**settings),
        )

    def env(self) -> dict[str, str]:
        out = {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }
        if self.buckets:
            out["S3_BUCKET"] = self.buckets[0]
        return out

    def _ports(self) -> list[int]:
        return list(self.ports.values())

    def _pick_ports(self) -> None:
        self.ports = dict(zip(self._PORT_NAMES, free_ports(len(self._PORT_NAMES)), strict=True))

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        # Volumes already on disk: after a restart the master must know every one of them again
        # before reads work (until then GetObject fails with "volume id N not found").
        self._volumes_on_disk = len(list(self.data_dir.glob("*.dat")))
        config = {"identities": [i.as_config() for i in self.identities]}
        self.config_file.write_text(json.dumps(config, indent=2))
        self.config_file.chmod(0o600)

    def _command(self) -> list[str]:
        p = self.ports
        return [
            self._weed,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            # The admin server starts even with -admin.ui=false, and then its maintenance worker
            # fails to reach it and logs a retry every few seconds; with the UI on (loopback, no
            # password, like everything here) the worker connects and stays quiet.
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin.grpc']}",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # No network here, and a test broker has nothing to report anyway.
            "-master.telemetry=false",
            # The default 1 s pre-stop pause would make every simulated outage slower.
            "-volume.preStopSeconds=0",
            f"-s3.localSocket={self.state_dir / 's3.sock'}",
            f"-filer.localSocket={self.state_dir / 'filer.sock'}",
            f"-s3.config={self.config_file}",
        ]

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3)
        last_error = "no answer"

        def answers() -> bool:
            nonlocal last_error
            if not _port_open(self.host, self.port, 0.2):
                last_error = f"port {self.port} closed"
                return False
            try:
                probe.list_buckets()
            except (BotoCoreError, ClientError) as exc:
                last_error = f"list_buckets: {exc}"
                return False
            return True

        def volumes_known() -> bool:
            nonlocal last_error
            nodes, volumes = self._master_topology()
            last_error = (
                f"master knows {nodes} volume servers and {volumes} of the "
                f"{self._volumes_on_disk} volumes on disk"
            )
            return nodes >= 1 and volumes >= self._volumes_on_disk

        for check in (answers, volumes_known):
            if not _wait_until(
                check, timeout=deadline - time.monotonic(), interval=0.1, alive=self.is_running
            ):
                return last_error
            _log.debug(
                "s3: %s after %.2fs",
                check.__name__,
                self.start_timeout - (deadline - time.monotonic()),
            )

        # weed mini registers one more SIGTERM hook after its servers answer and then prints
        # its welcome banner; a SIGTERM in between deadlocks its shutdown (the handler holds
        # the hook lock the main goroutine is waiting for). So "ready" includes the banner.
        def banner() -> bool:
            return self._BANNER in _read_from(self.log_file, log_offset)

        if not _wait_until(
            banner,
            timeout=min(10.0, max(0.0, deadline - time.monotonic())),
            interval=0.05,
            alive=self.is_running,
        ):
            if not self.is_running():
                return "exited before printing its welcome banner"
            _log.warning("s3: no %r line in the log; a stop right now may hang", self._BANNER)
        return None

    def _master_topology(self) -> tuple[int, int]:
        """(volume servers, volumes) registered with the master; (0, 0) if it does not answer."""
        url = f"http://{self.host}:{self.ports['master']}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status = json.load(resp)
        except (OSError, ValueError):
            return 0, 0
        nodes = [
            node
            for dc in status.get("Topology", {}).get("DataCenters") or []
            for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return len(nodes), sum(int(node.get("Volumes", 0)) for node in nodes)

    def _after_ready(self) -> None:
        if not self.buckets:
            return
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in self.buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def _after_stop(self) -> None:
        # weed puts some gRPC unix sockets in /tmp, named by port, and leaves them on SIGKILL.
        for path in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
            port = path.stem.rpartition("-")[2]
            if port.isdigit() and int(port) in self.ports.values():
                path.unlink(missing_ok=True)
