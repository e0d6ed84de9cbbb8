"""``parsefl keys init``: a network CA, one ECDSA P-256 key pair and X.509 certificate per agent,
and a peers file (agent id -> address, certificate fingerprint); and :class:`Identities`,
which loads them back, trusting a certificate only if the CA issued it, it is valid now, it
names the agent it is listed for and its fingerprint is the peers file's.

Layout of a keys folder::

    ca.pem                    the network CA's certificate (public)
    ca.key                    the CA's private key (keep it off the worker machines)
    peers.json                {"ca": fingerprint, "agents": [{"id", "address", "fingerprint",
                              "certificate"}]}
    certs/agent_NNNN.pem      agent certificates (public: every machine gets all of them)
    private/agent_NNNN.key    agent private keys (each machine gets only its own agents')
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parsefl.errors import ConfigError

VALID_DAYS = 365
# One key pair and certificate take about a millisecond: 65,536 agents are a couple of
# minutes, and more is a typo (1e7 would run for hours and fill the disk).
MAX_AGENTS = 65_536
MAX_KEY_BYTES = 1 << 16  # a P-256 PEM key is ~250 bytes; never read more than this
# Exclusive creation, no link following: a file or a link planted at a key's path is never
# written through (O_NOFOLLOW does not exist on Windows, where links need privileges).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "parsefl"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: ec.EllipticCurvePublicKey, issuer: str,
                 signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.DNSName(subject)]), False)
            .sign(signer, hashes.SHA256()))


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Create ``path`` (it must not exist, not even as a link) and write ``data`` into it."""
    try:
        fd = os.open(path, _CREATE, 0o600 if private else 0o644)
    except FileExistsError:
        raise ConfigError("keys folder", f"{path} appeared while writing the keys; "
                          "another process writes this folder") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _clear(paths: Iterable[Path], force: bool) -> None:
    """Refuse any of ``paths`` that exists (a file, a link, anything) unless ``force``; with
    ``force``, unlink them (a link itself, never its target)."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        if not force:
            raise ConfigError("keys folder", f"{path} already exists: the folder already "
                              "holds keys; choose an empty folder, or --force to replace them")
        if path.is_dir() and not path.is_symlink():
            raise ConfigError("keys folder", f"{path} is a directory where a key file goes; "
                              "remove it")
        path.unlink()


def _no_link(path: Path) -> None:
    """Refuse a sub-folder that is a link or a file: keys would land (and --force unlink)
    wherever it points."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        raise ConfigError("keys folder", f"{path} must be a directory, not a link or a file")


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 rather than Ed25519: gRPC's TLS (BoringSSL) accepts P-256 certificates, so the
    # same identities authenticate TLS links and sign wire messages.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def agent_name(agent: int) -> str:
    return f"agent-{agent}"


def init_keys(folder: str | Path, n_agents: int,
              addresses: Mapping[int, str] | None = None, force: bool = False) -> Path:
    """Create a CA and ``n_agents`` agent identities in ``folder``; return the peers file.

    Every file is created new (never written through an existing file or link); ``force``
    first unlinks the files of an earlier ``init`` instead of refusing them. ``private/`` is
    mode 0700, private keys 0600."""
    if not 1 <= n_agents <= MAX_AGENTS:
        raise ConfigError("--agents", f"expected 1 to {MAX_AGENTS}, got {n_agents}")
    out = Path(folder)
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError("keys folder", f"{out} exists and is not a directory")
    _no_link(out / "certs")
    _no_link(out / "private")
    names = [f"agent_{i:04d}" for i in range(n_agents)]
    _clear([out / "ca.key", out / "ca.pem", out / "peers.json",
            *(out / "certs" / f"{n}.pem" for n in names),
            *(out / "private" / f"{n}.key" for n in names)], force)
    (out / "certs").mkdir(parents=True, exist_ok=True)
    (out / "private").mkdir(mode=0o700, exist_ok=True)
    os.chmod(out / "private", 0o700)  # exactly: mkdir's mode passes through the umask
    ca_key = _new_key()
    ca = _certificate("parsefl-ca", ca_key.public_key(), "parsefl-ca", ca_key, ca=True)
    _write(out / "ca.key", _pem_key(ca_key), private=True)
    _write(out / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    agents = []
    for i, name in enumerate(names):
        key = _new_key()
        cert = _certificate(agent_name(i), key.public_key(), "parsefl-ca", ca_key, ca=False)
        rel = f"certs/{name}.pem"
        _write(out / rel, cert.public_bytes(serialization.Encoding.PEM))
        _write(out / "private" / f"{name}.key", _pem_key(key), private=True)
        agents.append({"id": i, "address": (addresses or {}).get(i, "127.0.0.1"),
                       "fingerprint": fingerprint(cert), "certificate": rel})
    peers = out / "peers.json"
    _write(peers, (json.dumps({"ca": fingerprint(ca), "agents": agents}, indent=2) + "\n")
           .encode())
    return peers


def read_private(path: Path) -> bytes:
    """A private key file's bytes: refused (one line naming the file) unless it is a regular
    file, not a link, that only its owner may read or write (POSIX)."""
    try:
        fd = os.open(path, _READ)  # O_NONBLOCK: a FIFO planted here cannot hang the open
    except OSError as err:
        why = "is a symbolic link" if err.errno == errno.ELOOP else f"cannot be read ({err})"
        raise ConfigError(str(path), f"{why}; a private key must be a regular file") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(str(path), "is not a regular file; a private key must be one")
        if os.name == "posix" and mode & 0o077:
            raise ConfigError(str(path), f"mode {stat.S_IMODE(mode):04o}: group or others "
                              "may access this private key; chmod 600 it (and make a new "
                              "key if others could read it)")
        return fh.read(MAX_KEY_BYTES)


class Identities:
    """The trusted agent certificates of a keys folder, and the private keys of ``local``."""

    def __init__(self, folder: str | Path, local: Iterable[int] = ()) -> None:
        self.folder = Path(folder)
        try:
            peers = json.loads((self.folder / "peers.json").read_text())
            ca = x509.load_pem_x509_certificate((self.folder / "ca.pem").read_bytes())
        except (OSError, ValueError) as err:
            raise ConfigError("keys", f"{self.folder}: no readable peers.json and ca.pem "
                              f"({err}); create them with `parsefl keys init`") from None
        if fingerprint(ca) != peers.get("ca"):
            raise ConfigError("keys", f"{self.folder}/ca.pem is not the peers file's CA")
        self.public: dict[int, ec.EllipticCurvePublicKey] = {}
        self.by_fingerprint: dict[str, int] = {}
        for entry in peers["agents"]:
            cert = x509.load_pem_x509_certificate((self.folder / entry["certificate"]).read_bytes())
            self._trust(int(entry["id"]), cert, ca, entry["fingerprint"])
        self.private = {i: self._private(i) for i in local}
        self.fingerprints = {i: fp for fp, i in self.by_fingerprint.items()}

    def _trust(self, agent: int, cert: x509.Certificate, ca: x509.Certificate, fp: str) -> None:
        now = dt.datetime.now(dt.UTC)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigError("keys", f"agent {agent}'s certificate is not issued by the CA"
                              ) from None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if fingerprint(cert) != fp or [n.value for n in names] != [agent_name(agent)] \
                or not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ConfigError("keys", f"agent {agent}'s certificate does not match the peers "
                              "file (fingerprint, name) or is expired")
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ConfigError("keys", f"agent {agent}'s certificate is not a P-256 key")
        self.public[agent] = key
        self.by_fingerprint[fp] = agent

    def sign(self, agent: int, data: bytes) -> bytes:
        return self.private[agent].sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, agent: int, signature: bytes, data: bytes) -> bool:
        try:
            self.public[agent].verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def _private(self, agent: int) -> ec.EllipticCurvePrivateKey:
        path = self.folder / "private" / f"agent_{agent:04d}.key"
        if not os.path.lexists(path):
            raise ConfigError("keys", f"no private key for agent {agent} ({path})")
        try:
            key = serialization.load_pem_private_key(read_private(path), None)
        except (ValueError, TypeError) as err:
            raise ConfigError(str(path), f"not a PEM private key ({err})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or _spki(key.public_key()) \
                != _spki(self.public[agent]):
            raise ConfigError("keys", f"{path} does not match agent {agent}'s certificate")
        return key


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
