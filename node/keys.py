"""The node's Ed25519 signing key: created once in the data folder, loaded on every start.

The key file ``<data>/signing.key`` is one line of text, readable by its owner only::

    ed25519 <key id> <unpadded standard base64 of the 32-byte seed>

The key id is ``protocol.derive_key_id`` of the public key, so a file whose id does not
match its seed is corrupt and refused. A new key is written to a temporary file and then
linked into place, so a crash never leaves half a key behind and an existing key is never
overwritten — losing it would mean every peer that pinned it stops trusting this node.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import nacl.signing

from protocol import (
    ProtocolError,
    decode_base64,
    derive_key_id,
    encode_base64,
    encode_verify_key,
    signing_key_from_seed,
)

__all__ = [
    "KEY_FILE_NAME",
    "KeyFileError",
    "NodeKey",
    "generate_key",
    "load_key",
    "load_or_create_key",
    "parse_key_file",
]

KEY_FILE_NAME: Final = "signing.key"
_ALGORITHM: Final = "ed25519"
_SEED_BYTES: Final = 32
_MAX_KEY_FILE_BYTES: Final = 1024


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


def generate_key() -> tuple[NodeKey, str]:
    """A fresh key from the system's randomness, with its key file line."""
    seed = os.urandom(_SEED_BYTES)
    signing_key = signing_key_from_seed(seed)
    key = NodeKey(derive_key_id(signing_key.verify_key), signing_key)
    return key, f"{_ALGORITHM} {key.key_id} {encode_base64(seed)}\n"


def parse_key_file(text: str) -> NodeKey:
    """Read a key file's contents; raise :class:`KeyFileError` saying what is wrong."""
    line = text.removesuffix("\n")
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts) or not line.isprintable():
        raise KeyFileError("expected one line: 'ed25519 <key id> <base64 seed>'")
    algorithm, key_id, encoded_seed = parts
    if algorithm != _ALGORITHM:
        raise KeyFileError(f"unsupported key algorithm {algorithm[:32]!r}")
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


def load_key(path: Path) -> NodeKey:
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
        return parse_key_file(text)
    except KeyFileError as exc:
        raise KeyFileError(f"key file {path} is corrupt: {exc}") from None


def _write_new(path: Path, content: str) -> bool:
    """Create ``path`` holding ``content`` atomically; False if it already exists."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            os.chmod(temp, stat.S_IRUSR | stat.S_IWUSR)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
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


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (POSIX; a no-op where directories can't be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_or_create_key(data_dir: Path) -> tuple[NodeKey, bool]:
    """The node's key from ``data_dir``, creating the folder and the key on first use.

    Returns the key and whether it was just created. Never overwrites an existing key
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
        return load_key(path), False
    key, content = generate_key()
    try:
        created = _write_new(path, content)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    if not created:
        return load_key(path), False
    return key, True
