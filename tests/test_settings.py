"""Every setting is checked at start against the one table (gateway/settings.py SETTINGS):
a bad value stops any command with one line and exit code 2, before anything starts."""

from __future__ import annotations

import importlib.metadata
import logging
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from gateway import cli, settings_doc
from gateway.settings import OPENTELEMETRY_VARIABLES, SETTINGS, Settings, SettingsError, for_start, from_env
from tests.test_serve import clean_env, command, free_port

ROOT = Path(__file__).resolve().parents[1]
STRONG_KEY = secrets.token_urlsafe(48)
# Where nothing answers: a bad value that got through would fail later, and differently.
NOWHERE_DB = "postgresql://postgres@127.0.0.1:9/none"


def run_main(monkeypatch, capsys, env: dict[str, str], *argv: str) -> tuple[int, str]:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.env for s in SETTINGS])
def test_every_setting_refuses_each_bad_value_in_one_line(setting, monkeypatch, capsys, tmp_path):
    assert setting.kind.bad, f"{setting.env}: its kind names no value it refuses"
    for bad in setting.kind.bad:
        env = {"DATABASE_URL": NOWHERE_DB, setting.env: bad}
        code, err = run_main(monkeypatch, capsys, env, "migrate", "--data-dir", str(tmp_path / "data"))
        assert code == 2, (bad, err)
        [line] = err.strip().splitlines()
        assert line.startswith(f"account-gateway: {setting.env} "), line
        assert setting.kind.accepts in line
        if getattr(setting.kind, "refused", None):
            assert bad not in line  # a secret is never repeated
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started


def test_the_defaults_are_the_settings_defaults():
    assert from_env({}) == Settings()
    assert from_env({"GATEWAY_ENV": "production"}).seed_demo is False
    assert from_env({"TOKEN_TTL_SECONDS": ""}).token_ttl_seconds == 900  # empty counts as unset
    assert from_env({"DB_COMMAND_TIMEOUT_SECONDS": "0"}).db_command_timeout_seconds is None


@pytest.mark.parametrize("env,args,starts", [
    ({"DB_POOL_MAX_SIZE": "0"}, (), "account-gateway: DB_POOL_MAX_SIZE must be an integer from 1 to 1000, not '0'"),
    ({"PROVIDER_TIMEOUT_SECONDS": "0"}, (), "account-gateway: PROVIDER_TIMEOUT_SECONDS must be a number from "
                                            "0.001 to 120"),
    ({"TOKEN_TTL_SECONDS": "-5"}, (), "account-gateway: TOKEN_TTL_SECONDS must be an integer from 60 to 86400"),
    ({"SMTP_URL": "http://mail"}, (), "account-gateway: SMTP_URL must be an smtp:// or smtps:// address"),
    ({}, ("--port", "99999"), "account-gateway serve: argument --port: a port from 1 to 65535, not '99999'"),
], ids=["pool-0", "provider-timeout-0", "token-ttl-negative", "smtp-http", "port-99999"])
def test_serve_with_a_bad_setting_says_so_in_one_line(tmp_path, env, args, starts):
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), *args, "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, env={**clean_env(), **env}, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(starts), line
    assert not (tmp_path / "d" / "postgres").exists()


def test_an_unreachable_provider_during_the_demo_seed_is_one_line(database_url, tmp_path):
    env = {**clean_env(), "DATABASE_URL": database_url, "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
           "PROVIDER_TIMEOUT_SECONDS": "1", "PROVIDER_MAX_RETRIES": "0"}
    run = subprocess.run([*command(), "seed", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("account-gateway: seeding the demo data failed: The payment provider is unavailable")
    assert env["STRIPE_API_BASE"] in last


# --- production -------------------------------------------------------------------------------

@pytest.mark.parametrize("env,missing", [
    ({}, "DATABASE_URL and STRIPE_API_KEY"),
    ({"DATABASE_URL": NOWHERE_DB}, "STRIPE_API_KEY"),
    ({"STRIPE_API_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}, "DATABASE_URL"),
])
def test_production_refuses_the_development_services(tmp_path, env, missing):
    env = {**clean_env(), "GATEWAY_ENV": "production", "SECRET_KEY": STRONG_KEY, **env}
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"account-gateway: production needs {missing}: "), line
    assert "ALLOW_EMBEDDED_SERVICES=1" in line
    assert not (tmp_path / "postgres").exists()


def test_production_on_embedded_services_only_when_allowed_and_loudly(tmp_path, caplog):
    settings = from_env({"GATEWAY_ENV": "production", "SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="^production needs DATABASE_URL and STRIPE_API_KEY"):
        for_start(settings)
    with caplog.at_level(logging.WARNING, logger="gateway.settings"):
        assert for_start(settings.with_(allow_embedded_services=True)).secret_key == STRONG_KEY
    assert "PRODUCTION ON DEVELOPMENT SERVICES" in caplog.text
    real = settings.with_(database_url=NOWHERE_DB, stripe_api_key="sk_live_x", stripe_webhook_secret="whsec_x")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.settings"):
        for_start(real)
    assert caplog.text == ""


@pytest.mark.parametrize("key", ["a" * 32, "changeme-" * 4, "0123456789abcdef" * 2, "short"])
def test_weak_secret_keys_are_refused(key):
    with pytest.raises(SettingsError, match="^SECRET_KEY is too weak") as refused:
        from_env({"GATEWAY_ENV": "production", "SECRET_KEY": key})
    assert key not in str(refused.value)


def test_generated_keys_are_accepted():
    for _ in range(200):
        for key in (secrets.token_urlsafe(32), secrets.token_hex(16), secrets.token_hex(32)):
            assert from_env({"SECRET_KEY": key}).secret_key == key


# --- documentation ----------------------------------------------------------------------------

def test_the_readme_table_is_generated_from_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    assert settings_doc.readme_with_table(readme) == readme, "run: python -m gateway.settings_doc"


def test_every_environment_variable_the_code_reads_is_in_the_table():
    """A variable read anywhere but through SETTINGS would be undocumented and unchecked."""
    passed_to_children = {"PYTHONPATH"}  # the emulator's child process, not a setting
    known = {s.env for s in SETTINGS} | set(OPENTELEMETRY_VARIABLES) | passed_to_children
    read: dict[str, str] = {}
    for package in ("gateway", "auth", "datasources", "resolvers", "planning", "loaders", "schema"):
        for path in (ROOT / package).rglob("*.py"):
            for name in re.findall(r"""(?:environ|env)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""",
                                   path.read_text()):
                read[name] = str(path.relative_to(ROOT))
    assert read, "the scan found nothing: the pattern is broken"
    assert {name: where for name, where in read.items() if name not in known} == {}


def test_serve_help_lists_every_environment_variable(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    for name in [s.env for s in SETTINGS] + list(OPENTELEMETRY_VARIABLES):
        assert re.search(rf"^\s+{name}\b", out, re.M), name


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help_and_shows_its_default():
    for parser in _parsers(cli._parser()):
        text = parser.format_help()
        for action in parser._actions:
            assert action.help, f"{parser.prog} {action.dest} has no help text"
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                assert f"default: {action.default}" in " ".join(text.split()), f"{parser.prog} {action.dest}"


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"account-gateway {importlib.metadata.version('account-gateway')}"


def test_origins_are_read_as_a_list_of_origins():
    from gateway.setting_kinds import Origins

    assert Origins().parse("https://portal.example.com, http://localhost:5173/") == (
        "https://portal.example.com", "http://localhost:5173")
    for bad in (*Origins().bad, "http://localhost:port"):
        with pytest.raises(ValueError):
            Origins().parse(bad)
