"""Settings: defaults from the spec, kith.toml on top, options on top of that, strict errors,
and kith.example.toml as the contract that documents every setting."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from node.cli import cli
from node.config import CONFIG_FILE_NAME, SETTINGS, ConfigError, NodeConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "kith.example.toml"


def _write(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(exist_ok=True)
    path = data_dir / CONFIG_FILE_NAME
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_ones_spec_client_md_gives() -> None:
    config = NodeConfig()
    assert config.registration_mode == "closed"
    assert (config.requests_per_second, config.request_burst) == (50, 200)
    assert config.max_connections_per_user == 20
    assert config.max_connections == 10_000
    assert (config.heartbeat_interval_s, config.presence_timeout_s) == (5, 30)
    assert config.typing_timeout_ms == 30_000
    assert (config.sync_batch_items, config.sync_catch_up_limit, config.sync_room_tail) == (
        100,
        1_000,
        20,
    )
    assert config.storage_synchronous == "NORMAL"
    assert config.password_cost == "interactive"
    assert (config.host, config.port, config.server_name) == ("127.0.0.1", 7447, "localhost")
    assert config.tls_cert is None
    assert not config.tls


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == NodeConfig(data_dir=tmp_path)


def test_file_sets_settings_of_every_section(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """
        [listen]
        host = "0.0.0.0"
        port = 8448
        [server]
        name = "chat.example.org"
        [registration]
        mode = "token"
        token = "s3cret"
        [limits]
        requests_per_second = 2.5
        max_connections_per_user = 3
        [presence]
        heartbeat_interval_s = 1
        presence_timeout_s = 4.5
        [typing]
        timeout_ms = 1000
        [sync]
        batch_items = 10
        [storage]
        synchronous = "full"
        [passwords]
        cost = "min"
        [accounts]
        session_check_interval_s = 0.5
        [log]
        level = "debug"
        """,
    )
    config = load_config(tmp_path)
    assert (config.host, config.port, config.server_name) == ("0.0.0.0", 8448, "chat.example.org")
    assert (config.registration_mode, config.registration_token) == ("token", "s3cret")
    assert (config.requests_per_second, config.request_burst) == (2.5, 200)
    assert config.max_connections_per_user == 3
    assert (config.heartbeat_interval_s, config.presence_timeout_s) == (1.0, 4.5)
    assert config.typing_timeout_ms == 1000
    assert config.sync_batch_items == 10
    assert config.storage_synchronous == "FULL"
    assert config.password_cost == "min"
    assert config.session_check_interval_s == 0.5
    assert config.log_level == "debug"


def test_command_line_options_override_the_file_and_none_means_not_given(tmp_path: Path) -> None:
    _write(tmp_path, '[listen]\nhost = "0.0.0.0"\nport = 8448\n[log]\nlevel = "debug"\n')
    config = load_config(tmp_path, host="::1", port=None, server_name="b.example", log_level=None)
    assert (config.host, config.port, config.server_name) == ("::1", 8448, "b.example")
    assert config.log_level == "debug"


def test_relative_tls_paths_are_relative_to_the_data_folder(tmp_path: Path) -> None:
    _write(tmp_path, '[listen]\ntls_cert = "tls/cert.pem"\ntls_key = "/etc/kith/key.pem"\n')
    config = load_config(tmp_path)
    assert config.tls_cert == tmp_path / "tls" / "cert.pem"
    assert config.tls_key == Path("/etc/kith/key.pem")
    assert config.tls


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[listne]\nhost = 'x'\n", "unknown section [listne]"),
        ("[limits]\nmax_conections = 5\n", "unknown setting 'max_conections' in [limits]"),
        ("listen = 5\n", "[listen] must be a table of settings"),
        ("[listen]\nport = '7447'\n", "[listen] port must be an integer"),
        ("[listen]\nport = 7447.0\n", "[listen] port must be an integer"),
        ("[limits]\nrequest_burst = true\n", "[limits] request_burst must be an integer"),
        ("[limits]\nrequests_per_second = 'fast'\n", "[limits] requests_per_second must be a num"),
        ("[listen]\nport = 70000\n", "[listen] port: 70000 is not in 0..65535"),
        ("[limits]\nmax_connections = 0\n", "[limits] max_connections: must be at least 1"),
        ("[limits]\nrequests_per_second = 0\n", "[limits] requests_per_second: must be a pos"),
        ("[limits]\nrequests_per_second = nan\n", "[limits] requests_per_second: must be a pos"),
        ("[presence]\npresence_timeout_s = 5\n", "[presence] presence_timeout_s: must be longer"),
        ("[typing]\ntimeout_ms = 120001\n", "[typing] timeout_ms: must be in 1..120000"),
        ("[sync]\nroom_tail = 0\n", "[sync] room_tail: must be in 1..100"),
        ("[registration]\nmode = 'invite'\n", "[registration] mode: 'invite' is not one of"),
        ("[registration]\nmode = 'token'\n", "[registration] token: registration mode 'token'"),
        ("[storage]\nsynchronous = 'OFF'\n", "[storage] synchronous: 'OFF' is not one of"),
        ("[passwords]\ncost = 'max'\n", "[passwords] cost: 'max' is not one of interactive, min"),
        ("[log]\nlevel = 'loud'\n", "[log] level: 'loud' is not one of debug, info"),
        ("[server]\nname = 'Bad_Name'\n", "[server] name: invalid server name"),
        ("[listen]\ntls_cert = 'c.pem'\n", "[listen] tls_cert: tls_cert and tls_key go together"),
        ("[listen\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path)
    error = str(raised.value)
    assert "\n" not in error
    assert error.startswith(str(path))
    assert message in error


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    tmp_path.joinpath(CONFIG_FILE_NAME).write_bytes(b"[log]\nlevel = '\xff'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_a_bad_command_line_value_is_named_without_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^server_name: invalid server name"):
        load_config(tmp_path, server_name="not a name")


def test_an_unknown_override_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="colour"):
        load_config(tmp_path, colour="blue")


# --- docs as a contract: kith.example.toml ------------------------------------------------


def _commented_keys(text: str) -> set[tuple[str, str]]:
    """``(section, key)`` of lines ``# key = value`` (settings without a default)."""
    found, section = set(), ""
    for line in text.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line.strip())
        if header:
            section = header.group(1)
        match = re.fullmatch(r"# (\w+) = .+", line.strip())
        if match:
            found.add((section, match.group(1)))
    return found


def test_every_setting_is_a_field_and_every_field_but_data_dir_is_a_setting() -> None:
    field_names = {f.name for f in dataclasses.fields(NodeConfig)}
    # [peers] is a table of server names, not settings (spec/federation.md §2.1).
    assert {s.field for s in SETTINGS} == field_names - {"data_dir", "peers"}
    assert len({(s.section, s.key) for s in SETTINGS}) == len(SETTINGS)


def test_example_file_documents_every_setting_with_its_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    active = tomllib.loads(text)
    commented = _commented_keys(text)
    defaults = NodeConfig()
    for setting in SETTINGS:
        default = getattr(defaults, setting.field)
        if default is None:
            assert (setting.section, setting.key) in commented, setting.name
        else:
            assert setting.key in active.get(setting.section, {}), f"{setting.name} undocumented"
            assert setting.parse(active[setting.section][setting.key]) == default, setting.name


def test_example_file_names_only_real_settings() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    known = {(s.section, s.key) for s in SETTINGS}
    active = {(section, key) for section, table in tomllib.loads(text).items() for key in table}
    assert active <= known
    assert _commented_keys(text) <= known


def test_example_file_copied_into_a_data_folder_gives_the_defaults(tmp_path: Path) -> None:
    _write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    assert load_config(tmp_path) == NodeConfig(data_dir=tmp_path)


# --- any file is either settings or one ConfigError -----------------------------------------

_KEYS = st.sampled_from([(s.section, s.key) for s in SETTINGS] + [("limits", "x"), ("x", "y")])
_VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats().map(lambda f: "nan" if math.isnan(f) else repr(f)),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.sampled_from(['"closed"', '"token"', '"open"', '"min"', '"FULL"', '"debug"', "[1]"]),
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_file_gives_settings_or_a_config_error(entries: dict[tuple[str, str], str]) -> None:
    sections: dict[str, list[str]] = {}
    for (section, key), value in entries.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder), text)
        try:
            config = load_config(Path(folder))
        except ConfigError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(config, NodeConfig)


# --- the command line -----------------------------------------------------------------------


def test_serve_with_a_bad_file_fails_with_one_line_and_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "kith-data", "[limits]\nmax_connections = -1\n")
    result = CliRunner().invoke(cli, ["serve"], prog_name="kith")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "[limits] max_connections: must be at least 1" in line


def test_serve_help_names_the_file_and_every_override() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], prog_name="kith")
    assert result.exit_code == 0
    for word in ("--host", "--port", "--data", "--server-name", "--log-level", "kith.toml"):
        assert word in result.output


def test_peers_table_maps_server_names_to_addresses(tmp_path: Path) -> None:
    _write(tmp_path, '[peers]\n"b.example" = "127.0.0.1:9000"\n"c.example:8448" = "wss://c:1"\n')
    config = load_config(tmp_path)
    assert config.peers == {"b.example": "127.0.0.1:9000", "c.example:8448": "wss://c:1"}


@pytest.mark.parametrize(
    "body", ['[peers]\n"not a name!" = "x:1"\n', '[peers]\n"b.example" = 7\n', "peers = 1\n"]
)
def test_peers_table_refuses_bad_entries(tmp_path: Path, body: str) -> None:
    _write(tmp_path, body)
    with pytest.raises(ConfigError):
        load_config(tmp_path)
