"""The conformance adapter of this repository's own implementation (``protocol``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import protocol
from protocol import rooms
from protocol.crypto import megolm, megolm_ratchet, olm_account, olm_messages, olm_session
from protocol.errors import ProtocolError
from protocol.federation import keys as server_keys
from protocol.federation import link
from tests.conformance.adapter import ConformanceError, Implementation

ID_CHECKS: dict[str, Callable[[str], object]] = {
    "server_name": protocol.parse_server_name,
    "user_id": protocol.parse_user_id,
    "room_id": protocol.validate_room_id,
    "event_id": protocol.validate_event_id,
    "device_id": protocol.validate_device_id,
    "key_id": protocol.validate_key_id,
}


def _link_roles(roles: dict[str, str]) -> link.LinkRoles:
    return link.LinkRoles(
        roles["initiator"], roles["responder"], roles["initiator_nonce"], roles["responder_nonce"]
    )


def _translate(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except protocol.FrameError as exc:
        raise ConformanceError(
            exc.code.value, request_id=exc.request_id, close_code=exc.close_code
        ) from exc
    except ProtocolError as exc:
        raise ConformanceError(exc.code.value) from exc


class KithAdapter:
    """Wraps ``protocol`` in the :class:`Implementation` interface."""

    def encode_canonical_json(self, value: Any) -> bytes:
        return bytes(_translate(lambda: protocol.encode_canonical_json(value)))

    def decode_json(self, data: bytes) -> Any:
        return _translate(lambda: protocol.decode_json(data))

    def check_identifier(self, kind: str, text: str) -> None:
        _translate(lambda: ID_CHECKS[kind](text))

    def encode_base64(self, data: bytes, *, urlsafe: bool) -> str:
        return protocol.encode_base64_urlsafe(data) if urlsafe else protocol.encode_base64(data)

    def decode_base64(self, text: str, *, urlsafe: bool) -> bytes:
        decode = protocol.decode_base64_urlsafe if urlsafe else protocol.decode_base64
        return bytes(_translate(lambda: decode(text)))

    def public_key(self, seed: bytes) -> str:
        return protocol.encode_verify_key(protocol.signing_key_from_seed(seed).verify_key)

    def derive_key_id(self, public_key: str) -> str:
        return protocol.derive_key_id(protocol.decode_verify_key(public_key))

    def sign_json(self, obj: dict[str, Any], entity: str, key_id: str, seed: bytes) -> Any:
        key = protocol.signing_key_from_seed(seed)
        return _translate(lambda: protocol.sign_json(obj, entity, key_id, key))

    def verify_json(self, obj: dict[str, Any], entity: str, key_id: str, public_key: str) -> None:
        key = protocol.decode_verify_key(public_key)
        _translate(lambda: protocol.verify_json(obj, entity, key_id, key))

    def compute_content_hash(self, event: dict[str, Any]) -> str:
        return str(_translate(lambda: protocol.compute_content_hash(event)))

    def redact_event(self, event: dict[str, Any]) -> Any:
        return protocol.redact_event(event)

    def compute_event_id(self, event: dict[str, Any]) -> str:
        return str(_translate(lambda: protocol.compute_event_id(event)))

    def sign_event(self, event: dict[str, Any], server_name: str, key_id: str, seed: bytes) -> Any:
        key = protocol.signing_key_from_seed(seed)
        return _translate(lambda: protocol.sign_event(event, server_name, key_id, key))

    def verify_event(
        self, event: dict[str, Any], keys: dict[str, dict[str, str]]
    ) -> tuple[str, str, Any]:
        verify_keys = {
            server: {key_id: protocol.decode_verify_key(k) for key_id, k in by_id.items()}
            for server, by_id in keys.items()
        }
        verified: protocol.VerifiedEvent = _translate(
            lambda: protocol.verify_event(event, verify_keys)
        )
        return ("redacted" if verified.redacted else "ok", verified.event_id, verified.event)

    def make_key_object(
        self,
        server_name: str,
        ts: int,
        current: list[bytes],
        old: list[tuple[str, int]],
        co_signers: list[bytes],
    ) -> Any:
        old_keys = [
            server_keys.OldKey(protocol.decode_verify_key(public_key), expired_ts)
            for public_key, expired_ts in old
        ]
        return server_keys.build_key_object(
            server_name,
            ts,
            [protocol.signing_key_from_seed(seed) for seed in current],
            old_keys,
            co_signers=[protocol.signing_key_from_seed(seed) for seed in co_signers],
        )

    def check_key_object(self, obj: Any) -> None:
        _translate(lambda: server_keys.parse_key_object(obj))

    def keys_for_event(self, obj: dict[str, Any], origin_server_ts: int) -> list[str]:
        parsed = _translate(lambda: server_keys.parse_key_object(obj))
        return sorted(parsed.keys_for_event(origin_server_ts))

    def pin_key_object(self, pinned: dict[str, Any] | None, received: dict[str, Any]) -> Any:
        def kept() -> Any:
            old = None if pinned is None else server_keys.parse_key_object(pinned)
            return server_keys.pin(old, server_keys.parse_key_object(received)).source

        return _translate(kept)

    def link_statement(self, roles: dict[str, str], signer: str, ts: int) -> bytes:
        return link.link_statement(_link_roles(roles), signer, ts)

    def make_link_proof(self, roles: dict[str, str], signer: str, ts: int, seed: bytes) -> Any:
        key = protocol.signing_key_from_seed(seed)
        return link.make_proof(_link_roles(roles), signer, ts, key)

    def check_link_proof(
        self, proof: Any, roles: dict[str, str], signer: str, keys: dict[str, Any], now_ms: int
    ) -> None:
        def check() -> None:
            link_key = server_keys.parse_key_object(keys).link_key
            link.check_proof(proof, _link_roles(roles), signer, link_key, now_ms)

        _translate(check)

    def check_link_nonce(self, nonce: Any) -> None:
        _translate(lambda: link.check_nonce(nonce))

    def decode_frame(self, text: str, endpoint: str, sender: str) -> dict[str, Any]:
        frame = _translate(
            lambda: protocol.decode_frame(
                text, endpoint=protocol.Endpoint(endpoint), sender=protocol.Role(sender)
            )
        )
        if isinstance(frame, protocol.Request):
            return {"kind": "request", "id": frame.id, "op": frame.op, "params": frame.params}
        if isinstance(frame, protocol.Notice):
            return {"kind": "notice", "op": frame.op, "params": frame.params}
        if isinstance(frame, protocol.Response):
            return {"kind": "result", "id": frame.id, "result": frame.result}
        return {"kind": "error", "id": frame.id, "code": frame.code, "message": frame.message}

    def authorize(self, event: dict[str, Any], state: list[dict[str, Any]]) -> str | None:
        by_register = {(e["type"], e["state_key"]): e for e in state}
        reason = rooms.authorize(event, rooms.MappingState(by_register))
        return None if reason is None else reason.value

    def resolve(self, events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        (create_id, create), *rest = events
        room = rooms.Room(create_id, create)
        for event_id, event in rest:
            room.add({event_id: event})
        verdicts = {}
        for event_id, _ in events:
            reason = room.rejection(event_id)
            verdicts[event_id] = None if reason is None else reason.value
        return {
            "verdicts": verdicts,
            "state": sorted([kind, key, e] for (kind, key), e in room.state().items()),
            "timeline": room.timeline(),
        }

    def megolm_advance(self, ratchet: bytes, index: int, target: int) -> bytes:
        return megolm_ratchet.Ratchet(ratchet, index).advance_to(target).data

    def megolm_keys(self, ratchet: bytes) -> tuple[bytes, bytes, bytes]:
        keys = megolm_ratchet.Ratchet(ratchet, 0).keys()
        return keys.aes_key, keys.mac_key, keys.iv

    def megolm_outbound(
        self, ratchet: bytes, index: int, seed: bytes, plaintexts: list[bytes]
    ) -> tuple[str, str, list[str]]:
        session = megolm.OutboundGroupSession(megolm_ratchet.Ratchet(ratchet, index), seed)
        session_key = session.session_key
        return session.session_id, session_key, [session.encrypt(p) for p in plaintexts]

    def _megolm_inbound(self, key: str, is_export: bool) -> megolm.InboundGroupSession:
        make = (
            megolm.InboundGroupSession.import_export
            if is_export
            else megolm.InboundGroupSession.from_session_key
        )
        session: megolm.InboundGroupSession = _translate(lambda: make(key))
        return session

    def megolm_decrypt(self, key: str, is_export: bool, messages: list[str]) -> list[Any]:
        session = self._megolm_inbound(key, is_export)
        results: list[Any] = []
        for message in messages:
            try:
                plaintext, index, replay = session.decrypt(message)
            except ProtocolError as exc:
                results.append({"error": exc.code.value})
            else:
                results.append({"plaintext": plaintext, "index": index, "replay": replay})
        return results

    def megolm_import(self, key: str, is_export: bool) -> int:
        return self._megolm_inbound(key, is_export).first_known_index

    def megolm_export(self, key: str, is_export: bool, index: int) -> str:
        return self._megolm_inbound(key, is_export).export_at(index)

    def olm_identity_keys(self, signing_seed: bytes, identity_private: bytes) -> dict[str, str]:
        return olm_account.Account(signing_seed, identity_private).identity_keys

    def olm_sign(self, signing_seed: bytes, message: bytes) -> str:
        return olm_account.Account(signing_seed, bytes(32)).sign(message)

    def olm_conversation(
        self, alice: dict[str, bytes], bob: dict[str, bytes], steps: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        alice_account = olm_account.Account(alice["signing_seed"], alice["identity_private"])
        bob_account = olm_account.Account(bob["signing_seed"], bob["identity_private"])
        bob_account.generate_one_time_keys(1, lambda n: bob["one_time_private"])
        (one_time_key,) = bob_account.one_time_keys.values()
        setup = [alice["base_private"], alice["ratchet_private"]]
        sessions: dict[str, olm_session.Session | None] = {
            "alice": alice_account.create_outbound_session(
                bob_account.curve25519_key, one_time_key, _draw_from(setup)
            ),
            "bob": None,
        }
        results: list[dict[str, Any]] = []
        for step in steps:
            if "sender" in step:
                session = sessions[step["sender"]]
                assert session is not None
                message = session.encrypt(step["plaintext"], _draw_from(step["random"]))
                results.append({"type": int(message.type), "body": message.body})
                continue
            try:
                message = olm_messages.OlmMessage(step["type"], step["body"])
                current = sessions[step["receiver"]]
                if current is None:
                    current, plaintext = bob_account.create_inbound_session(
                        alice_account.curve25519_key, message
                    )
                    sessions[step["receiver"]] = current
                else:
                    plaintext = current.decrypt(message)
            except ProtocolError as exc:
                results.append({"error": exc.code.value})
            else:
                results.append({"plaintext": plaintext})
        return results

    def olm_decode_message(self, message_type: int, body: str) -> dict[str, Any]:
        def decode() -> Any:
            message = olm_messages.OlmMessage(message_type, body)  # type: ignore[arg-type]
            return olm_messages.decode_olm_message(message)

        return _olm_fields(_translate(decode))


def _draw_from(chunks: list[bytes]) -> Callable[[int], bytes]:
    """A ``random_bytes`` that hands out ``chunks`` in order (the vectors' fixed keys)."""
    pending = list(chunks)
    return lambda n: pending.pop(0)[:n]


def _olm_fields(message: Any) -> dict[str, Any]:
    if isinstance(message, olm_messages.PreKeyMessage):
        return {
            "one_time_key": protocol.encode_base64(message.one_time_key),
            "base_key": protocol.encode_base64(message.base_key),
            "identity_key": protocol.encode_base64(message.identity_key),
            "message": _olm_fields(message.message),
        }
    return {
        "ratchet_key": protocol.encode_base64(message.ratchet_key),
        "chain_index": message.chain_index,
        "ciphertext": message.ciphertext.hex(),
        "mac": message.mac.hex(),
    }


ADAPTER: Implementation = KithAdapter()
