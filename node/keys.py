"""The node's Ed25519 signing keys: created once in the data folder, rotated on demand.

The key file ``<data>/signing.key`` is ASCII text readable by its owner only, one key per
line::

    ed25519 <key id> <seed>                     the current key: exactly one such line
    ed25519-next <key id> <seed>                the key the node takes when it next starts
    ed25519-old <key id> <seed> <expired_ts>    a retired key: any number, newest first

``<seed>`` is the unpadded standard base64 of the 32-byte seed and ``<expired_ts>`` the
time, in decimal milliseconds since the Unix epoch, the key was retired
(spec/federation.md §1.4). A file of one ``ed25519`` line — all that earlier versions
wrote — is a key ring without retired keys and loads unchanged. The key id is
``protocol.derive_key_id`` of the public key, so a line whose id does not match its seed is
corrupt and refused.

``kith key rotate`` only writes the ``ed25519-next`` line: a running node keeps signing with
the key it read at start, so the current key may not be retired before the node stops using
it — events it signed after its ``expired_ts`` would be refused by every peer that learns of
the retirement. The node retires it, and takes the next key, when it starts
(:func:`apply_pending_rotation`), at that moment.

Retired keys keep their seeds: the node co-signs its key object with every one of them, so
a peer that pinned an object from several rotations ago still follows the chain
(spec/federation.md §1.2). The first key is written to a temporary file and then linked
into place, so a crash never leaves half a key behind and an existing key is never
overwritten; a rotation replaces the file atomically (write, fsync, rename) under a lock,
so no key is ever lost — losing one would mean every peer that pinned it stops trusting
this node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import nacl.signing

from protocol import (
    JsonObject,
    ProtocolError,
    decode_base64,
    derive_key_id,
    encode_base64,
    encode_verify_key,
    signing_key_from_seed,
)
from protocol.canonical_json import MAX_SAFE_INTEGER
from protocol.federation.keys import MAX_OLD_KEYS, OldKey, build_key_object

__all__ = [
    "KEY_FILE_NAME",
    "MAX_RETIRED_KEYS",
    "KeyFileError",
    "KeyRing",
    "NodeKey",
    "RetiredKey",
    "apply_pending_rotation",
    "generate_key",
    "load_key",
    "load_keyring",
    "load_or_create_key",
    "load_or_create_keyring",
    "parse_key_file",
    "parse_keyring",
    "prepare_rotation",
    "rotate_key",
]

KEY_FILE_NAME: Final = "signing.key"
MAX_RETIRED_KEYS: Final = 256
"""Retired keys a key file may hold; the key object lists them all (§1.1 allows 256)."""
_ALGORITHM: Final = "ed25519"
_RETIRED: Final = "ed25519-old"
_NEXT: Final = "ed25519-next"
_SEED_BYTES: Final = 32
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,15}")
_LINE_FORMAT: Final = (
    "expected one line per key: 'ed25519 <key id> <base64 seed>',"
    " 'ed25519-next <key id> <base64 seed>' or 'ed25519-old <key id> <base64 seed> <expired_ts>'"
)


class KeyFileError(Exception):
    """The data folder or its key file cannot be used; the message is one line for humans."""


@dataclass(frozen=True, slots=True)
class NodeKey:
    """The node's signing key and its public names. ``repr`` never shows the seed."""

    key_id: str
    signing_key: nacl.signing.SigningKey = field(repr=False)

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The public half, as peers pin it."""
        return self.signing_key.verify_key

    @property
    def public_key(self) -> str:
        """The public key as unpadded base64 (spec/signing.md §1)."""
        return encode_verify_key(self.verify_key)


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A key the node no longer signs with, kept to co-sign key objects (§1.2, §1.4)."""

    key: NodeKey
    expired_ts: int
    """When the node stopped signing with it, in milliseconds (spec/federation.md §1.1)."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every key of the node: the current one, and the retired ones, newest first."""

    current: NodeKey
    old: tuple[RetiredKey, ...] = ()
    next: NodeKey | None = None
    """A key made by ``kith key rotate``, taken when the node next starts."""

    def key_object(self, server_name: str, ts: int) -> JsonObject:
        """This node's key object made at ``ts`` (spec/federation.md §1.1).

        Lists every retired key — an event signed with any of them must stay verifiable for
        a peer that pins this object — and is co-signed by each, so each peer's pin leads to
        it (§1.2).
        """
        newest = sorted(self.old, key=lambda retired: retired.expired_ts, reverse=True)
        return build_key_object(
            server_name,
            ts,
            [self.current.signing_key],
            [OldKey(r.key.verify_key, r.expired_ts) for r in newest[:MAX_OLD_KEYS]],
            co_signers=[r.key.signing_key for r in self.old],
        )

    def rotated(self, new: NodeKey, now_ms: int) -> KeyRing:
        """This ring with ``new`` as the current key and the current one retired at
        ``now_ms`` (spec/federation.md §1.4)."""
        if not 0 <= now_ms <= MAX_SAFE_INTEGER:
            raise ValueError(f"now_ms {now_ms} is not a time in milliseconds")
        if len(self.old) >= MAX_RETIRED_KEYS:
            raise KeyFileError(
                f"the key file already holds {MAX_RETIRED_KEYS} retired keys, the most it may"
            )
        if any(key.key_id == new.key_id for key in self.all_keys() if key != self.next):
            raise KeyFileError(f"the new key's id {new.key_id} is already in use")
        return KeyRing(new, (RetiredKey(self.current, now_ms), *self.old))

    def prepared(self, new: NodeKey) -> KeyRing:
        """This ring with ``new`` waiting to become the current key at the next start."""
        if self.next is not None:
            raise KeyFileError(
                f"key {self.next.key_id} already waits for the node to start; start it first"
            )
        if any(key.key_id == new.key_id for key in self.all_keys()):
            raise KeyFileError(f"the new key's id {new.key_id} is already in use")
        return KeyRing(self.current, self.old, new)

    def all_keys(self) -> list[NodeKey]:
        """Every key of the ring, the current one first (the next one last, if any)."""
        pending = [self.next] if self.next is not None else []
        return [self.current, *(retired.key for retired in self.old), *pending]

    def file_text(self) -> str:
        """The key file holding this ring (the module docstring gives its format)."""
        lines = [f"{_ALGORITHM} {self.current.key_id} {_seed_text(self.current)}"]
        if self.next is not None:
            lines.append(f"{_NEXT} {self.next.key_id} {_seed_text(self.next)}")
        lines += [f"{_RETIRED} {r.key.key_id} {_seed_text(r.key)} {r.expired_ts}" for r in self.old]
        return "\n".join(lines) + "\n"


def _seed_text(key: NodeKey) -> str:
    return encode_base64(bytes(key.signing_key))


def generate_key() -> tuple[NodeKey, str]:
    """A fresh key from the system's randomness, with its key file line."""
    seed = os.urandom(_SEED_BYTES)
    signing_key = signing_key_from_seed(seed)
    key = NodeKey(derive_key_id(signing_key.verify_key), signing_key)
    return key, f"{_ALGORITHM} {key.key_id} {encode_base64(seed)}\n"


def _parse_key(key_id: str, encoded_seed: str) -> NodeKey:
    try:
        seed = decode_base64(encoded_seed)
    except ProtocolError as exc:
        raise KeyFileError(f"the seed is not valid base64 ({exc.message})") from None
    if len(seed) != _SEED_BYTES:
        raise KeyFileError(f"the seed is {len(seed)} bytes, expected {_SEED_BYTES}")
    signing_key = signing_key_from_seed(seed)
    expected = derive_key_id(signing_key.verify_key)
    if key_id != expected:
        raise KeyFileError(f"key id {key_id[:32]!r} does not match the seed (expected {expected})")
    return NodeKey(key_id, signing_key)


def _parse_line(line: str) -> tuple[str, NodeKey | RetiredKey]:
    """A key file line: its kind (``ed25519``, ``ed25519-next``, ``ed25519-old``) and key."""
    parts = line.split(" ")
    if not 3 <= len(parts) <= 4 or not all(parts) or not line.isprintable():
        raise KeyFileError(_LINE_FORMAT)
    algorithm = parts[0]
    if algorithm not in (_ALGORITHM, _NEXT, _RETIRED):
        raise KeyFileError(f"unsupported key algorithm {algorithm[:32]!r}")
    if len(parts) != (4 if algorithm == _RETIRED else 3):
        raise KeyFileError(_LINE_FORMAT)
    key = _parse_key(parts[1], parts[2])
    if algorithm != _RETIRED:
        return algorithm, key
    expired = parts[3]
    if _TIMESTAMP.fullmatch(expired) is None or int(expired) > MAX_SAFE_INTEGER:
        raise KeyFileError(f"expired_ts {expired[:32]!r} is not a time in milliseconds")
    return algorithm, RetiredKey(key, int(expired))


def parse_keyring(text: str) -> KeyRing:
    """Read a key file's contents; raise :class:`KeyFileError` saying what is wrong."""
    lines = text.removesuffix("\n").split("\n")
    current: list[NodeKey] = []
    pending: list[NodeKey] = []
    old: list[RetiredKey] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        where = f" (line {number})" if len(lines) > 1 else ""
        try:
            kind, parsed = _parse_line(line)
        except KeyFileError as exc:
            raise KeyFileError(f"{exc}{where}") from None
        key = parsed if isinstance(parsed, NodeKey) else parsed.key
        if key.key_id in seen:
            raise KeyFileError(f"key {key.key_id} is listed twice{where}")
        seen.add(key.key_id)
        if isinstance(parsed, RetiredKey):
            old.append(parsed)
        else:
            (current if kind == _ALGORITHM else pending).append(parsed)
    if len(current) != 1:
        raise KeyFileError(f"expected one current key ('ed25519' line), found {len(current)}")
    if len(pending) > 1:
        raise KeyFileError(f"expected at most one next key ('{_NEXT}' line), found {len(pending)}")
    if len(old) > MAX_RETIRED_KEYS:
        raise KeyFileError(f"more than {MAX_RETIRED_KEYS} retired keys")
    return KeyRing(current[0], tuple(old), pending[0] if pending else None)


def parse_key_file(text: str) -> NodeKey:
    """The current key of a key file's contents (see :func:`parse_keyring`)."""
    return parse_keyring(text).current


def load_keyring(path: Path) -> KeyRing:
    """Load the key file at ``path``; raise :class:`KeyFileError` if it is unusable."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {path} is corrupt: too large")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {path} is corrupt: not ASCII text") from None
    try:
        return parse_keyring(text)
    except KeyFileError as exc:
        raise KeyFileError(f"key file {path} is corrupt: {exc}") from None


def load_key(path: Path) -> NodeKey:
    """The current key of the key file at ``path`` (see :func:`load_keyring`)."""
    return load_keyring(path).current


def _write_temp(path: Path, content: str) -> Path:
    """A durable owner-only temporary file beside ``path`` holding ``content``."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            os.chmod(temp, stat.S_IRUSR | stat.S_IWUSR)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _write_new(path: Path, content: str) -> bool:
    """Create ``path`` holding ``content`` atomically; False if it already exists."""
    temp = _write_temp(path, content)
    try:
        # link(2), unlike rename(2), fails when the target exists: two nodes initialising
        # one folder at once end up sharing the first key instead of one overwriting it.
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        temp.unlink(missing_ok=True)


def _replace(path: Path, content: str) -> None:
    """Replace ``path`` by a file holding ``content``: readers see the old or the new."""
    temp = _write_temp(path, content)
    try:
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (POSIX; a no-op where directories can't be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the key file ``path`` names now.

    A rotation replaces the file, so a lock taken on the old one would not keep a second
    rotation out: after locking, check that ``path`` still names the locked file.
    """
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked, named = os.fstat(fd), os.stat(path)
            if (locked.st_dev, locked.st_ino) == (named.st_dev, named.st_ino):
                yield
                return
        finally:
            os.close(fd)


def load_or_create_keyring(data_dir: Path) -> tuple[KeyRing, bool]:
    """The node's keys from ``data_dir``, creating the folder and a first key on first use.

    Returns the key ring and whether it was just created. Never overwrites an existing key
    file; raises :class:`KeyFileError` when the folder or the file is unusable.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise KeyFileError(f"data folder {data_dir} exists and is not a folder") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create data folder {data_dir}: {exc.strerror}") from None
    path = data_dir / KEY_FILE_NAME
    if path.exists() or path.is_symlink():
        return load_keyring(path), False
    key, content = generate_key()
    try:
        created = _write_new(path, content)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    if not created:
        return load_keyring(path), False
    return KeyRing(key), True


def load_or_create_key(data_dir: Path) -> tuple[NodeKey, bool]:
    """The node's current key (see :func:`load_or_create_keyring`)."""
    ring, created = load_or_create_keyring(data_dir)
    return ring.current, created


def _change_ring(data_dir: Path, change: Callable[[KeyRing], KeyRing | None]) -> KeyRing:
    """Apply ``change`` to the key file under its lock, replacing the file atomically (a
    crash leaves the old file or the new one); None from ``change`` leaves it as it is."""
    path = data_dir / KEY_FILE_NAME
    try:
        with _locked(path):
            ring = load_keyring(path)
            changed = change(ring)
            if changed is None:
                return ring
            _replace(path, changed.file_text())
    except FileNotFoundError:
        raise KeyFileError(
            f"no key file {path} to rotate (create one with: kith init --data {data_dir})"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot rotate key file {path}: {exc.strerror or exc}") from None
    return changed


def rotate_key(data_dir: Path, now_ms: int) -> KeyRing:
    """Make the next key current — the one :func:`prepare_rotation` made, or a fresh one —
    and retire the current one at ``now_ms`` (federation.md §1.4). Only for a node that is
    not running; ``kith key rotate`` prepares instead.

    The retired key keeps its seed, to co-sign every later key object; concurrent rotations
    all take effect.
    """

    def rotate(ring: KeyRing) -> KeyRing:
        new = ring.next if ring.next is not None else generate_key()[0]
        return ring.rotated(new, now_ms)

    return _change_ring(data_dir, rotate)


def prepare_rotation(data_dir: Path) -> KeyRing:
    """Make the key the node takes, and the time it retires its current one, when it next
    starts (federation.md §1.4): a running node goes on signing with the key it has."""
    return _change_ring(data_dir, lambda ring: ring.prepared(generate_key()[0]))


def apply_pending_rotation(data_dir: Path, now_ms: int) -> KeyRing:
    """At start: take the prepared key, if any, retiring the current one at ``now_ms``."""
    return _change_ring(
        data_dir, lambda ring: ring.rotated(ring.next, now_ms) if ring.next is not None else None
    )
