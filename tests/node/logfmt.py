"""Read logfmt lines back, as the conformance suite and log tooling do."""

from __future__ import annotations

import json
import re

_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """The fields of one line; raises ``ValueError`` if it is not well-formed logfmt."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(line):
        match = _PAIR.match(line, position)
        if match is None:
            raise ValueError(f"not logfmt at column {position}: {line!r}")
        key, value = match.groups()
        fields[key] = json.loads(value) if value.startswith('"') else value
        position = match.end()
    return fields
