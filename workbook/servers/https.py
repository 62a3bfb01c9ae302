"""Serve a project over https with a throwaway certificate (trustme), as the mixed-content pitfall needs."""

from __future__ import annotations

import shutil
from pathlib import Path

from .guard import GRACE
from .server import Server


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write a throwaway certificate for `host` and localhost, its key and its CA into `directory`; return (cert, key).

    The CA (ca.pem) is made for this one certificate: a client that trusts it can verify the server.
    """
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(*dict.fromkeys([host, "localhost", "127.0.0.1"]))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_path))
    leaf.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    return cert_path, key_path


class HttpsServer(Server):
    """The daphne CLI on a TLS endpoint: pages load over https://, sockets must use wss://."""

    def __init__(self, project, **options):
        super().__init__(project, how="daphne", **options)
        self.tls_dir = self.log_path.parent / f"tls-{self.port}"
        self.cert, self.key = self.tls_dir / "cert.pem", self.tls_dir / "key.pem"
        self.ca = self.tls_dir / "ca.pem"  # trust it to verify this server (ssl.create_default_context(cafile=…))

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

    def stop(self, timeout: float = GRACE) -> None:
        """Stop the server, then delete its throwaway certificate."""
        super().stop(timeout)
        shutil.rmtree(self.tls_dir, ignore_errors=True)

    @property
    def http_url(self) -> str:
        return f"https://{self._netloc}/"

    def ws_url(self, path: str = "/ws/chat/") -> str:
        return f"wss://{self._netloc}{path}"
