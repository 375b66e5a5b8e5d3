"""Start and stop real Mosquitto, SeaweedFS S3 and PostgreSQL on loopback for tests and local work.

Library::

    with Services(only={"mosquitto", "s3"}) as svc:
        svc.mosquitto.tls_port, svc.mosquitto.ca_file, svc.mosquitto.user("agent-1").password
        svc.s3.endpoint_url, svc.s3.access_key, svc.s3.secret_key

CLI (prints ``KEY=value`` lines, also written to ``STATE_DIR/services.env``)::

    infra/dev-services up [--only mosquitto,s3,postgres] [--state-dir DIR] [--keep]
    infra/dev-services down --state-dir DIR

Every service is a real process and a direct child of this Python process, so it is reaped here
the moment it dies. The init process of these machines reaps orphans only after a second or two, and
meanwhile a zombie's PID still answers ``kill(pid, 0)``: liveness checks here read /proc instead.
Only the standard library is imported up front; boto3 and psycopg are imported when the S3 and
PostgreSQL readiness checks first need them.
"""

from footfall.broker_auth import Role
from infra.devservices.broker_users import BrokerUser, default_broker_users
from infra.devservices.ca import make_test_ca
from infra.devservices.cli import main, read_env_file
from infra.devservices.common import (
    DEFAULT_TOPIC_PREFIX,
    LOOPBACK,
    MissingBinaryError,
    ServiceError,
    free_ports,
    mosquitto_binaries,
    pid_alive,
    weed_binary,
)
from infra.devservices.configured_mosquitto import ConfiguredMosquitto
from infra.devservices.connack import mqtt_connack
from infra.devservices.mosquitto import Mosquitto
from infra.devservices.postgres import Postgres
from infra.devservices.s3 import S3Identity, S3Server
from infra.devservices.service import Service
from infra.devservices.stack import Services

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "LOOPBACK",
    "BrokerUser",
    "ConfiguredMosquitto",
    "MissingBinaryError",
    "Mosquitto",
    "Postgres",
    "Role",
    "S3Identity",
    "S3Server",
    "Service",
    "ServiceError",
    "Services",
    "default_broker_users",
    "free_ports",
    "main",
    "make_test_ca",
    "mosquitto_binaries",
    "mqtt_connack",
    "pid_alive",
    "read_env_file",
    "weed_binary",
]
