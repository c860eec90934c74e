"""CurveZMQ keys for remote use: creating key pairs, and deciding when the server needs them.

A key pair is two files in ZeroMQ's certificate format: NAME.key (public, safe to copy to the
other side) and NAME.key_secret (public + secret, keep private). The server needs its own
.key_secret and a folder of the allowed clients' .key files; a client needs the server's .key
and its own .key_secret.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth


class AuthError(Exception):
    """The server's security settings are missing or unusable; the message says what to do."""


def create_key_pair(folder, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret into `folder`; refuses to overwrite existing keys."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise AuthError(f"key name {name!r} must be a plain file name")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise AuthError(f"{path} already exists; choose another name or remove it first")
    zmq.auth.create_certificates(str(folder), name)
    os.chmod(secret, 0o600)
    return public, secret


def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: tcp on 127.0.0.0/8, ::1 or localhost, and ipc."""
    if endpoint.startswith("ipc://"):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: may be reachable from outside


@dataclass
class CurveSettings:
    server_public: bytes
    server_secret: bytes
    allowed_clients: Path


def load_curve_settings(secret_file, allowed_clients_dir) -> CurveSettings:
    """Check and load the server key pair and the folder of allowed client public keys."""
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as err:
        raise AuthError(f"cannot read the server key {secret_file}: {err}") from None
    if not secret:
        raise AuthError(f"{secret_file} has no secret key; pass the .key_secret file written by keygen")
    folder = Path(allowed_clients_dir)
    if not folder.is_dir():
        raise AuthError(f"allowed-clients folder {folder} does not exist")
    keys = sorted(folder.glob("*.key"))
    if not keys:
        raise AuthError(f"allowed-clients folder {folder} holds no .key files; copy each client's NAME.key there")
    for path in keys:
        try:
            zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as err:
            raise AuthError(f"client key {path} is unreadable: {err}") from None
    return CurveSettings(public, secret, folder)


def check_bind_security(endpoint: str, curve: CurveSettings | None) -> None:
    """Refuse a non-loopback bind without CurveZMQ: no unauthenticated server on the network."""
    if curve is None and not is_loopback(endpoint):
        raise AuthError(
            f"refusing to bind {endpoint} without authentication: a non-loopback address needs "
            "--curve-secret SERVER.key_secret and --allowed-clients FOLDER (create keys with "
            "`python -m backend keygen`)")


def start_authenticator(context: zmq.Context, curve: CurveSettings):
    """Start the ZAP handler that admits only the allowed client keys; returns it (call .stop())."""
    from zmq.auth.thread import ThreadAuthenticator

    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(curve.allowed_clients))
    return authenticator


def make_curve_server(socket: zmq.Socket, curve: CurveSettings) -> None:
    socket.curve_secretkey = curve.server_secret
    socket.curve_publickey = curve.server_public
    socket.curve_server = True
