"""Run every benchmark: ``python -m bench`` (or ``make bench``). Prints JSON rows."""

from __future__ import annotations

from bench import federation, node_load, rooms, sign_verify, trio_floor

if __name__ == "__main__":
    sign_verify.main()
    rooms.main()
    node_load.main()
    trio_floor.main()
    federation.main()
