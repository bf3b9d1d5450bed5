"""The client's store: one small JSON file that lets a device come back after a restart.

It holds the node's URL, the user and device ids, the device's access token and the stream
cursor — the last position of the device's stream (spec/client.md §5) that the application
has processed. That is everything a client needs to resume: ``authenticate`` with the token
(client.md §2), then ``sync`` from the cursor. With end-to-end encryption on it also holds
the device's keys and sessions, sealed under a key kept in a second file beside it
(``client.crypto_state``, spec/e2ee.md §4.7).

The file is written atomically (a temporary file in the same folder, flushed to disk, then
renamed over the old one), so a crash leaves either the old or the new contents, never half
of each; and with mode 0600, since the token lets anyone act as the device. The token is
never part of a ``repr`` and the library never logs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STORE_FORMAT", "Store", "StoreError", "write_atomically"]

STORE_FORMAT = 1
"""The ``format`` member of the file; a file of another format is refused, not guessed at."""

_FILE_MODE = 0o600
_FOLDER_MODE = 0o700


class StoreError(Exception):
    """The store file exists but cannot be used; the message names the file."""


def write_atomically(path: Path, data: bytes, *, mode: int = _FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole.

    The temporary file is created with ``mode`` from the start (never readable by others,
    not even for an instant) and synced before the rename; the folder is synced after it,
    so the rename itself survives a power cut.
    """
    folder = path.parent
    folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # not every platform can open a folder
        folder_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)


def _optional(data: dict[str, Any], name: str, kind: type, path: Path) -> Any:
    value = data.get(name)
    if value is not None and type(value) is not kind:
        raise StoreError(f"{path}: {name!r} must be a {kind.__name__}")
    return value


@dataclass
class Store:
    """A device's session on a node, kept in ``path`` (or only in memory if ``path`` is None).

    Change the fields, then :meth:`save` (or :meth:`dumps` and :func:`write_atomically` off
    the event loop, as the session does).
    """

    path: Path | None = None
    url: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    cursor: int | None = None
    """The last stream position the application processed (client.md §5)."""
    crypto: str | None = field(default=None, repr=False)
    """The device's end-to-end encryption state, sealed under the storage key kept beside
    the store (``client.crypto_state``); None until encryption is used."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Store:
        """The store kept in ``path``; an empty one (not yet saved) if the file is missing."""
        location = Path(path).expanduser()
        try:
            text = location.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(location)
        except OSError as exc:
            raise StoreError(f"{location}: cannot read the store: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise StoreError(f"{location}: the store is not JSON") from None
        if type(data) is not dict or data.get("format") != STORE_FORMAT:
            raise StoreError(f"{location}: not a Kith client store of format {STORE_FORMAT}")
        cursor = _optional(data, "cursor", int, location)
        if cursor is not None and cursor < 0:
            raise StoreError(f"{location}: 'cursor' must not be negative")
        return cls(
            location,
            url=_optional(data, "url", str, location),
            user_id=_optional(data, "user_id", str, location),
            device_id=_optional(data, "device_id", str, location),
            access_token=_optional(data, "access_token", str, location),
            cursor=cursor,
            crypto=_optional(data, "crypto", str, location),
        )

    @property
    def logged_in(self) -> bool:
        """True when the store holds a device and its token."""
        return self.access_token is not None and self.device_id is not None

    def remember_login(self, url: str, user_id: str, device_id: str, access_token: str) -> None:
        """Keep a fresh login; the cursor only survives if it is the same device as before."""
        if (self.url, self.user_id, self.device_id) != (url, user_id, device_id):
            self.cursor = None
            self.crypto = None
        self.url, self.user_id, self.device_id = url, user_id, device_id
        self.access_token = access_token

    def forget_device(self) -> None:
        """The device ended (logout, revoked, token refused): drop its token, id and cursor.

        The URL and user id stay, so that a later login knows where and who; the device's
        encryption keys go.
        """
        self.device_id = self.access_token = None
        self.cursor = None
        self.crypto = None  # the device's keys end with it

    def dumps(self) -> bytes:
        """The file's contents: a JSON object with a ``format`` member."""
        data = {
            "format": STORE_FORMAT,
            "url": self.url,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "access_token": self.access_token,
            "cursor": self.cursor,
        }
        if self.crypto is not None:
            data["crypto"] = self.crypto
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    def save(self) -> None:
        """Write the store to its file, atomically and with mode 0600 (no-op in memory)."""
        if self.path is not None:
            write_atomically(self.path, self.dumps())
