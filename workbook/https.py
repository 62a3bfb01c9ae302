"""Serve a project over https with a throwaway self-signed certificate, as the mixed-content pitfall needs."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from pathlib import Path

from .server import Server


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write a self-signed certificate and its key for `host` into `directory`; return (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ))
    return cert_path, key_path


class HttpsServer(Server):
    """The daphne CLI on a TLS endpoint: pages load over https://, sockets must use wss://."""

    def __init__(self, project, **options):
        super().__init__(project, how="daphne", **options)
        self.tls_dir = self.log_path.parent / f"tls-{self.port}"
        self.cert, self.key = self.tls_dir / "cert.pem", self.tls_dir / "key.pem"

    def start(self, timeout: float | None = None) -> HttpsServer:
        """Write a fresh certificate, then start daphne on it."""
        if not self.running:
            self.cert, self.key = self_signed(self.tls_dir)
        return super().start(*(() if timeout is None else (timeout,)))

    def command(self) -> list[str]:
        daphne = super().command()
        python, target = daphne[0], daphne[-1]
        # Twisted's endpoint syntax: ':' separates fields, so Windows drive letters need escaping.
        cert, key = (str(p).replace("\\", "/").replace(":", r"\:") for p in (self.cert, self.key))
        endpoint = f"ssl:{self.port}:privateKey={key}:certKey={cert}:interface={self.host}"
        return [python, "-m", "daphne", "-e", endpoint, target]

    def stop(self, timeout: float = 10) -> None:
        """Stop the server, then delete its throwaway certificate."""
        super().stop(timeout)
        shutil.rmtree(self.tls_dir, ignore_errors=True)

    @property
    def http_url(self) -> str:
        return f"https://{self._netloc}/"

    def ws_url(self, path: str = "/ws/chat/") -> str:
        return f"wss://{self._netloc}{path}"
