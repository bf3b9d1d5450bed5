"""Federation: this node's links to other nodes, its outbox to them, and what it does with
what they send (spec/federation.md).

| module | what |
|---|---|
| ``keystore`` | peers' pinned key objects (§1.2) and the keys that verify their events (§1.3) |
| ``channel`` | one WebSocket as a channel of text frames, for either end of a link |
| ``peer_link`` | one authenticated link: its handshake (§2.2), requests and answers both ways |
| ``links`` | the links of the node: dialing, accepting, one per peer (§2.3) |
| ``outbox`` | per-destination senders of queued events (§3.3) |
| ``inbound`` | answering a peer's requests: transactions (§3-§4), fetches (§5), invites (§7) |
| ``service`` | the facade the node and the client API use |
"""
