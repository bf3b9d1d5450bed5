"""``kith demo``, run in-process: its transcript — what each device printed as it received
it — shows every message reaching each member's device exactly once, and the node that was
down catching up with what was said meanwhile, in order."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

import node.demo
from node.cli import cli
from node.demo import DemoError, DemoReport, run_demo

TIMEOUT = 60
DEVICES = ("alice@a", "bob@b", "carol@c")
# `  1.23s  carol@c  ← #plans alice: "hello"`: a message a device received.
RECEIVED = re.compile(r'^\s*\d+\.\d+s  (\S+)\s+← (#\w+) (\w+): "(.*)"$')


def _received(lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(device, room, sender, body) of every message line, in transcript order."""
    return [(m[1], m[2], m[3], m[4]) for line in lines if (m := RECEIVED.match(line))]


async def _run(tmp_path: Path) -> DemoReport:
    with trio.fail_after(TIMEOUT):
        # Presence is not checked here: a short wait keeps the test quick either way.
        return await run_demo(tmp_path, presence_wait=0.2)


async def test_demo_shows_every_message_once_per_member_device_and_the_down_node_catching_up(
    tmp_path: Path,
) -> None:
    report = await _run(tmp_path)
    assert report.ok, report.problems
    seen = Counter(_received(report.lines))
    assert report.sent
    for message in report.sent:
        sender = message.sender.split("@")[0]
        for device in DEVICES:
            times = seen[(device, message.room, sender, message.body)]
            assert times == (1 if device in message.recipients else 0), (device, message)
    assert {m.room for m in report.sent} == {"#plans", "#dm"}
    assert not any(d == "carol@c" and room == "#dm" for d, room, _, _ in seen)

    while_down = [m.body for m in report.sent if m.while_down == "c.demo"]
    assert len(while_down) >= 2
    restarted = [i for i, line in enumerate(report.lines) if re.search(r"\bc\.demo\s+up:", line)]
    assert len(restarted) == 2, "c.demo starts, then starts again"
    after_restart = _received(report.lines[restarted[1] :])
    carol = [body for device, _, _, body in after_restart if device == "carol@c"]
    assert carol[: len(while_down)] == while_down
    assert report.summary[-1].endswith("in order: yes")


def test_demo_keeps_data_only_in_a_new_or_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["something"]


async def test_a_step_that_never_happens_ends_the_demo_with_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node.demo, "DELIVERY_WAIT", 0)
    with trio.fail_after(TIMEOUT), pytest.raises(DemoError, match="did not see"):
        await run_demo(tmp_path)
