"""``kith login``, ``register``, ``send``, ``tail`` and ``logout`` for scripts: JSON lines out
and exit codes that mean something, end to end against a real node.

Commands run in-process with click's ``CliRunner`` on a worker thread (each runs its own
trio loop there) while the node runs in the test's loop; ``kith tail`` is also run as a
process, to stop it with SIGTERM as a supervisor would.
"""

from __future__ import annotations

import json
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio
from click.testing import CliRunner, Result

import client
from client.cli import ExitCode
from node.cli import cli
from tests.client.helpers import PASSWORD, REPO, TIMEOUT, NodeRunner


async def kith(*args: str | Path, stdin: str | None = None) -> Result:
    """Run ``kith ARGS`` in-process on a worker thread; its result."""
    invoke = partial(CliRunner().invoke, cli, [str(a) for a in args], input=stdin)
    return await trio.to_thread.run_sync(invoke, abandon_on_cancel=True)


def _lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _bodies(lines: list[dict[str, Any]]) -> list[str]:
    return [
        line["event"]["content"]["body"]
        for line in lines
        if line["kind"] == "event" and line["event"]["type"] == "message"
    ]


async def test_scripts_log_in_send_and_tail(node: NodeRunner, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    laptop, phone = tmp_path / "laptop.json", tmp_path / "phone.json"
    url = node.url
    with trio.fail_after(TIMEOUT):
        made = await kith("register", url, "alice", "--store", laptop, "--password-file", secret)
        assert made.exit_code == ExitCode.OK, made.output
        assert "registered @alice:localhost" in made.stdout
        again = await kith("register", url, "alice", "--store", phone, "--password-file", secret)
        assert again.exit_code == ExitCode.REFUSED
        assert "user_exists" in again.stderr
        refused = await kith("login", url, "alice", "--store", phone, "--password-file", wrong)
        assert refused.exit_code == ExitCode.NOT_LOGGED_IN
        assert "bad_credentials" in refused.stderr
        stdin = PASSWORD + "\n"
        logged = await kith(
            "login", url, "alice", "--store", phone, "--password-file", "-", stdin=stdin
        )
        assert logged.exit_code == ExitCode.OK, logged.output

        async with client.connect(store=str(laptop)) as alice:
            plans = await alice.create_room(name="plans")
            other = await alice.create_room(name="other")

        sent = await kith("send", "--store", laptop, "plans", "hello from a script")
        assert sent.exit_code == ExitCode.OK, sent.output
        (line,) = _lines(sent)
        assert line["kind"] == "sent"
        assert line["room_id"] == plans
        assert line["event_id"].startswith("$")
        piped = await kith("send", "--store", laptop, other, "-", stdin="ünïcode from stdin\n")
        assert piped.exit_code == ExitCode.OK, piped.output

        tailed = await kith("tail", "--store", phone, "--until-caught-up")
        assert tailed.exit_code == ExitCode.OK, tailed.output
        lines = _lines(tailed)
        assert _bodies(lines) == ["hello from a script", "ünïcode from stdin"]
        assert lines[-1]["kind"] == "caught_up"
        assert "ü" in tailed.stdout  # UTF-8 as it is, not \\u escapes

        async with client.connect(store=str(laptop)) as alice:
            await alice.send(other, "elsewhere")
            await alice.send(plans, "in plans")
        only_plans = await kith("tail", "--store", phone, "plans", "--until-caught-up")
        assert _bodies(_lines(only_plans)) == ["in plans"]  # and nothing printed twice
        rest = await kith("tail", "--store", phone, "--until-caught-up")
        assert [line["kind"] for line in _lines(rest)] == ["caught_up"]  # all acknowledged

        out = await kith("logout", "--store", laptop)
        assert out.exit_code == ExitCode.OK, out.output
        after = await kith("send", "--store", laptop, "plans", "still there?")
        assert after.exit_code == ExitCode.NOT_LOGGED_IN
        assert "kith login" in after.stderr


async def test_exit_codes_say_what_went_wrong(node: NodeRunner, tmp_path: Path) -> None:
    store = tmp_path / "alice.json"
    with trio.fail_after(TIMEOUT):
        nothing = await kith("send", "--store", tmp_path / "none.json", "plans", "x")
        assert nothing.exit_code == ExitCode.NOT_LOGGED_IN
        usage = await kith("send", "--store", store)
        assert usage.exit_code == ExitCode.USAGE

        async with client.connect(node.url, store=str(store)) as alice:
            await alice.register("alice", PASSWORD)
        unknown = await kith("send", "--store", store, "no such room", "x")
        assert unknown.exit_code == ExitCode.REFUSED
        assert "no joined room named 'no such room'" in unknown.stderr
        no_room = await kith("send", "--store", store, "!" + "A" * 43, "x")
        assert no_room.exit_code == ExitCode.REFUSED
        assert "not_found" in no_room.stderr

        broken = tmp_path / "broken.json"
        broken.write_text("{")
        corrupt = await kith("tail", "--store", broken)
        assert corrupt.exit_code == ExitCode.REFUSED
        assert "not JSON" in corrupt.stderr

        await node.stop()
        down = await kith("send", "--store", store, "!" + "A" * 43, "x")
        assert down.exit_code == ExitCode.UNREACHABLE
        assert "cannot reach" in down.stderr


async def test_kith_tail_prints_live_updates_until_sigterm(
    node: NodeRunner, tmp_path: Path
) -> None:
    store = tmp_path / "alice.json"
    with trio.fail_after(TIMEOUT):
        async with client.connect(node.url, store=str(store)) as alice:
            await alice.register("alice", PASSWORD)
        async with client.connect(node.url) as other_device:
            await other_device.login("alice", PASSWORD)
            room_id = await other_device.create_room(name="live")
            async with trio.open_nursery() as nursery:
                command = [sys.executable, "-m", "node", "tail", "--store", str(store)]
                process: trio.Process = await nursery.start(
                    partial(trio.run_process, command, stdout=-1, check=False, cwd=REPO)
                )
                assert process.stdout is not None
                received = b""
                while b'"caught_up"' not in received:
                    received += await process.stdout.receive_some()
                await other_device.send(room_id, "live one")
                while b"live one" not in received:
                    received += await process.stdout.receive_some()
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == ExitCode.OK
        lines = [json.loads(line) for line in received.decode().splitlines()]
        assert _bodies(lines) == ["live one"]
