"""`make check-deploy`: Django's deployment checks pass with production settings and nothing but
the required environment; production settings refuse a missing or weak secret key."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

STRONG_KEY = secrets.token_urlsafe(50)


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    # Only the variables a deployment must set: defaults have to be secure on their own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "DECODELAB_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "decodelab.config.settings.production",
            "DJANGO_SECRET_KEY": STRONG_KEY,
            "DJANGO_ALLOWED_HOSTS": "example.org",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
            "DECODELAB_DATA_DIR": str(tmp_path),
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_production_settings_and_no_warnings(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)" in output, output
    assert not re.search(r"\(security\.[WE]\d+\)", output), output


def test_make_check_deploy_target_runs_the_deploy_check():
    """The Makefile target (when the lead's target is in place) runs the same command."""
    makefile = (ROOT / "Makefile").read_text()
    if "check-deploy:" not in makefile:
        pytest.fail("Makefile has no check-deploy target")
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "check-deploy"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "settings.production" in dry.stdout and "check --deploy --fail-level WARNING" in dry.stdout, dry.stdout


def settings_values(env: dict[str, str], *names: str) -> dict:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_defaults_are_secure_and_the_proxy_header_is_opt_in(tmp_path):
    values = settings_values(
        production_env(tmp_path),
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "X_FRAME_OPTIONS",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_PROXY_SSL_HEADER": None,  # trusting X-Forwarded-Proto is safe only behind a proxy that sets it
    }
    proxied = settings_values(production_env(tmp_path, DJANGO_BEHIND_TLS_PROXY="true"), "SECURE_PROXY_SSL_HEADER")
    assert proxied == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    result = manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr and "secrets.token_urlsafe(50)" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["short-key", "x" * 60, "django-insecure-" + secrets.token_urlsafe(50)],
    ids=["short", "one-character", "django-insecure"],
)
def test_a_weak_secret_key_stops_check_and_migrate(tmp_path, key):
    env = production_env(tmp_path, DJANGO_SECRET_KEY=key)
    for command in (["check"], ["migrate", "--noinput"]):
        result = manage(env, *command)
        assert result.returncode != 0, command
        assert "decodelab.E001" in result.stderr and "DJANGO_SECRET_KEY is too weak" in result.stderr, result.stderr
        assert "secrets.token_urlsafe(50)" in result.stderr
        assert key not in result.stderr  # the key itself is never echoed
    database = tmp_path / "deploy.sqlite3"
    if database.exists():  # migrate stopped before creating any table
        with sqlite3.connect(database) as db:
            assert db.execute("select name from sqlite_master where type = 'table'").fetchall() == []


def test_build_steps_run_with_a_placeholder_key(tmp_path):
    """Settings load with a weak key (the Dockerfile's collectstatic uses one); only the checks refuse it."""
    assert settings_values(production_env(tmp_path, DJANGO_SECRET_KEY="build"), "DEBUG") == {"DEBUG": False}
