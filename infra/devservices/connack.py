"""A bare MQTT 3.1.1 CONNECT / CONNACK exchange: whether a broker takes a user name and
password, without a client library (how the dev services check that a broker is ready and that
its password file took effect)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl

CONNACK_ACCEPTED = 0
CONNACK_BAD_CREDENTIALS = 4
CONNACK_NOT_AUTHORIZED = 5


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        data += chunk
    return data


def mqtt_connack(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 3.0,
) -> int:
    """Open an MQTT 3.1.1 session with these credentials (None, None: anonymous) and return the
    CONNACK return code."""

    def field_(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    client_id = f"devservices-probe-{secrets.token_hex(4)}".encode()
    # Flags 0xC2: user name, password, clean session; 0x02: clean session only.
    credentials = username is not None and password is not None
    body = (
        field_(b"MQTT")
        + bytes([4, 0xC2 if credentials else 0x02])
        + (10).to_bytes(2, "big")
        + field_(client_id)
    )
    if username is not None and password is not None:
        body += field_(username.encode()) + field_(password.encode())
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = (
            ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
        )
        sock.sendall(bytes([0x10]) + _varint(len(body)) + body)
        reply = _recv_exact(sock, 4)
        if reply[0] != 0x20:
            raise ConnectionError(f"expected CONNACK, got packet type {reply[0]:#x}")
        if reply[3] == CONNACK_ACCEPTED:
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean exit
        return reply[3]
