"""A throwaway certificate authority for test brokers: a CA and a server certificate for the
loopback host names, made with the ``openssl`` command line."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from infra.devservices.common import (
    LOOPBACK,
    _run,
    openssl_binary,
)


def make_test_ca(directory: Path, hosts: Sequence[str] = (LOOPBACK, "localhost")) -> None:
    """Write a throwaway CA (``ca.crt``/``ca.key``) and a server cert (``server.crt``/``.key``)
    for ``hosts`` into ``directory``, with the ``openssl`` CLI; existing files are kept."""
    openssl = openssl_binary()
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    srv_crt, srv_key, srv_csr = (
        directory / "server.crt",
        directory / "server.key",
        directory / "s.csr",
    )
    if ca_crt.exists() and srv_crt.exists() and srv_key.exists():
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-days",
            "30",
            "-subj",
            "/CN=footfall devservices test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        what="creating the test CA",
    )
    _run(
        [
            openssl,
            "req",
            "-new",
            *ec,
            "-keyout",
            str(srv_key),
            "-out",
            str(srv_csr),
            "-subj",
            f"/CN={hosts[-1]}",
        ],
        what="creating the server key",
    )
    san = ",".join(
        f"IP:{h}" if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", h) else f"DNS:{h}" for h in hosts
    )
    ext = directory / "server.ext"
    # Authority/subject key ids and a critical basicConstraints: Python 3.13's default context
    # sets VERIFY_X509_STRICT, which rejects certificates without them.
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={san}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(srv_csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-set_serial",
            f"0x{secrets.token_hex(8)}",
            "-days",
            "30",
            "-extfile",
            str(ext),
            "-out",
            str(srv_crt),
        ],
        what="signing the server certificate",
    )
    srv_csr.unlink(missing_ok=True)
    ca_key.chmod(0o600)
    srv_key.chmod(0o600)
