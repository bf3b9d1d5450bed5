"""``protocol/`` is pure: no IO, no clocks, no randomness (DESIGN.md, rule of the house).

Everything that can be decided without IO is decided in protocol/, so the node, the client
and a second implementation share one source of truth, and every function is a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"

FORBIDDEN_MODULES = {
    "trio",
    "trio_websocket",
    "wsproto",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "asyncio",
    "time",
    "random",
    "secrets",
    "threading",
    "subprocess",
    "urllib",
    "http",
    "ssl",
    "select",
    "selectors",
    "datetime",
}
# Calls that read the clock or draw randomness, named by their attribute chain.
FORBIDDEN_CALLS = {
    "os.urandom",
    "os.getrandom",
    "nacl.utils.random",
    "utils.random",
    "SigningKey.generate",
    "PrivateKey.generate",
    "nacl.signing.SigningKey.generate",
    "nacl.public.PrivateKey.generate",
}
FORBIDDEN_NAMES = {"urandom", "getrandom", "open", "print", "input"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.module in ("os", "nacl.utils"):
                names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in FORBIDDEN_CALLS or called in FORBIDDEN_NAMES:
                found.append(f"{path.name}:{node.lineno} calls {called}")
            continue
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            if root in FORBIDDEN_MODULES or name in {
                "os.urandom",
                "os.getrandom",
                "nacl.utils.random",
            }:
                found.append(f"{path.name}:{node.lineno} imports {name}")
    return found


def test_protocol_package_has_modules_to_check() -> None:
    assert len(list(PROTOCOL.rglob("*.py"))) >= 8


@pytest.mark.parametrize("path", sorted(PROTOCOL.rglob("*.py")), ids=lambda p: p.name)
def test_protocol_module_does_no_io(path: Path) -> None:
    assert _violations(path) == []


def test_the_checker_catches_what_it_forbids(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nimport os\nfrom trio import sleep\nfrom os import urandom\n"
        "import nacl.signing\nos.urandom(3)\nnacl.signing.SigningKey.generate()\nopen('x')\n"
    )
    assert len(_violations(bad)) == 6
