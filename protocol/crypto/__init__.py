"""End-to-end encryption as pure code (spec/e2ee.md): Olm between two devices, Megolm per
room and device, and the primitives they share. No IO: callers pass randomness in."""
