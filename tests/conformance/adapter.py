"""The interface an implementation under test offers the conformance suite.

Everything crosses it as plain JSON-shaped data (dicts, lists, str, int, bytes for raw
bytes), so an adapter can wrap a library in any language — through a subprocess, an FFI or
a native module. Failures are reported as :class:`ConformanceError` with the spec's error
code; the suite never looks at messages.
"""

from __future__ import annotations

from typing import Any, Protocol


class ConformanceError(Exception):
    """The implementation refused an input, with the error code spec/wire.md §6 names."""

    def __init__(
        self, code: str, *, request_id: str | int | None = None, close_code: int | None = None
    ) -> None:
        super().__init__(code)
        self.code = code
        self.request_id = request_id
        self.close_code = close_code


class Implementation(Protocol):
    """What an implementation must provide (each method mirrors one spec algorithm)."""

    def encode_canonical_json(self, value: Any) -> bytes:
        """spec/canonical-json.md §2."""
        ...

    def decode_json(self, data: bytes) -> Any:
        """spec/canonical-json.md §3; raise ConformanceError(code) on refusal."""
        ...

    def check_identifier(self, kind: str, text: str) -> None:
        """spec/ids.md; ``kind`` is a key of spec/vectors/ids.json."""
        ...

    def encode_base64(self, data: bytes, *, urlsafe: bool) -> str:
        """spec/signing.md §1."""
        ...

    def decode_base64(self, text: str, *, urlsafe: bool) -> bytes:
        """spec/signing.md §1; raise ConformanceError("bad_base64")."""
        ...

    def public_key(self, seed: bytes) -> str:
        """The unpadded base64 Ed25519 public key for a 32-byte seed."""
        ...

    def derive_key_id(self, public_key: str) -> str:
        """spec/signing.md §2."""
        ...

    def sign_json(self, obj: dict[str, Any], entity: str, key_id: str, seed: bytes) -> Any:
        """spec/signing.md §3."""
        ...

    def verify_json(self, obj: dict[str, Any], entity: str, key_id: str, public_key: str) -> None:
        """spec/signing.md §3; raise ConformanceError(code)."""
        ...

    def compute_content_hash(self, event: dict[str, Any]) -> str:
        """spec/events.md §6."""
        ...

    def redact_event(self, event: dict[str, Any]) -> Any:
        """spec/events.md §4."""
        ...

    def compute_event_id(self, event: dict[str, Any]) -> str:
        """spec/events.md §5."""
        ...

    def sign_event(self, event: dict[str, Any], server_name: str, key_id: str, seed: bytes) -> Any:
        """spec/events.md §6."""
        ...

    def verify_event(
        self, event: dict[str, Any], keys: dict[str, dict[str, str]]
    ) -> tuple[str, str, Any]:
        """spec/events.md §7: ("ok" | "redacted", event id, event kept)."""
        ...

    def make_key_object(
        self,
        server_name: str,
        ts: int,
        current: list[bytes],
        old: list[tuple[str, int]],
        co_signers: list[bytes],
    ) -> Any:
        """spec/federation.md §1.1, §1.4: the key object of keys with these seeds, listing
        ``old`` (public key, expired_ts), signed by ``current`` then ``co_signers``."""
        ...

    def check_key_object(self, obj: Any) -> None:
        """spec/federation.md §1.1; raise ConformanceError(code)."""
        ...

    def keys_for_event(self, obj: dict[str, Any], origin_server_ts: int) -> list[str]:
        """spec/federation.md §1.3: the bare ids of the keys that verify such an event."""
        ...

    def pin_key_object(self, pinned: dict[str, Any] | None, received: dict[str, Any]) -> Any:
        """spec/federation.md §1.2: the object kept pinned, or ConformanceError(code)."""
        ...

    def link_statement(self, roles: dict[str, str], signer: str, ts: int) -> bytes:
        """spec/federation.md §2.2: the bytes ``signer`` signs at ``ts`` on a link; ``roles``
        holds ``initiator``, ``responder``, ``initiator_nonce`` and ``responder_nonce``."""
        ...

    def make_link_proof(self, roles: dict[str, str], signer: str, ts: int, seed: bytes) -> Any:
        """spec/federation.md §2.2: ``signer``'s proof, made with the key of ``seed``."""
        ...

    def check_link_proof(
        self, proof: Any, roles: dict[str, str], signer: str, keys: dict[str, Any], now_ms: int
    ) -> None:
        """spec/federation.md §2.2: check ``signer``'s ``proof`` at ``now_ms``, ``keys`` being
        the signer's pinned key object; raise ConformanceError(code)."""
        ...

    def check_link_nonce(self, nonce: Any) -> None:
        """spec/federation.md §2.2: a nonce; raise ConformanceError("bad_params")."""
        ...

    def decode_frame(self, text: str, endpoint: str, sender: str) -> dict[str, Any]:
        """spec/wire.md §3: the frame as in spec/vectors/frames.json, or ConformanceError."""
        ...

    def authorize(self, event: dict[str, Any], state: list[dict[str, Any]]) -> str | None:
        """spec/rooms.md §5: ``None`` if allowed, else the reason code."""
        ...

    def resolve(self, events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """spec/state.md §6 over events in arrival order (create first):
        ``{"verdicts": {id: code | None}, "state": [[type, state_key, id]], "timeline": [id]}``."""
        ...

    def megolm_advance(self, ratchet: bytes, index: int, target: int) -> bytes:
        """spec/e2ee.md §3.3: the 128-byte Megolm ratchet at ``index`` wound to ``target``."""
        ...

    def megolm_keys(self, ratchet: bytes) -> tuple[bytes, bytes, bytes]:
        """spec/e2ee.md §3.4: (AES key, MAC key, IV) of a ratchet."""
        ...

    def megolm_outbound(
        self, ratchet: bytes, index: int, seed: bytes, plaintexts: list[bytes]
    ) -> tuple[str, str, list[str]]:
        """spec/e2ee.md §3.5, §3.6: (session id, session key, messages) of the outbound
        session with this ratchet at ``index`` and the Ed25519 key of ``seed``, encrypting
        ``plaintexts`` in turn."""
        ...

    def megolm_decrypt(self, key: str, is_export: bool, messages: list[str]) -> list[Any]:
        """spec/e2ee.md §3.8, §3.9: one inbound session from a session key (or an export)
        reads ``messages`` in turn; for each, ``{"plaintext": bytes, "index": int, "replay":
        bool}`` or ``{"error": code}``. A key that is refused raises ConformanceError."""
        ...

    def megolm_import(self, key: str, is_export: bool) -> int:
        """spec/e2ee.md §3.6, §3.7: the first known index; raise ConformanceError(code)."""
        ...

    def megolm_export(self, key: str, is_export: bool, index: int) -> str:
        """spec/e2ee.md §3.7: the export at ``index`` of the session made from ``key``."""
        ...

    def olm_identity_keys(self, signing_seed: bytes, identity_private: bytes) -> dict[str, str]:
        """spec/e2ee.md §2.1: ``{"curve25519": b64, "ed25519": b64}`` of an account whose
        Ed25519 key has this seed and whose Curve25519 private key is these 32 bytes."""
        ...

    def olm_sign(self, signing_seed: bytes, message: bytes) -> str:
        """spec/e2ee.md §2.1: the account's unpadded base64 signature of ``message``."""
        ...

    def olm_conversation(
        self, alice: dict[str, bytes], bob: dict[str, bytes], steps: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """spec/e2ee.md §2.2 to §2.6: Alice (``signing_seed``, ``identity_private``,
        ``base_private``, ``ratchet_private``) starts a session with Bob's one-time key
        (Bob: ``signing_seed``, ``identity_private``, ``one_time_private``), then ``steps``
        run in turn. A send step (``sender``, ``plaintext`` bytes, ``random``: the 32-byte
        ratchet keys it may draw) gives ``{"type", "body"}``; a receive step (``receiver``,
        ``type``, ``body``; Bob's first one starts his session) gives ``{"plaintext":
        bytes}`` or ``{"error": code}``."""
        ...

    def olm_decode_message(self, message_type: int, body: str) -> dict[str, Any]:
        """spec/e2ee.md §2.5: the fields of a message as in spec/vectors/olm.json
        (``decode``), or ConformanceError(code)."""
        ...
