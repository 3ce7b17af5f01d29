"""Secrets come only from the environment: no tracked file holds a secret key, password,
token or private key (the test settings' throwaway key is the one exception)."""

from __future__ import annotations

import re
import subprocess

from tests.support.servers import ROOT

# Credential formats that are never placeholders.
CREDENTIAL_FORMATS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_-]{32,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "DRF token header": re.compile(r"Token [0-9a-f]{40}\b"),
}
# A literal assigned to a name that holds a secret: SECRET_KEY = "...", password="...", api_key: "...".
SECRET_ASSIGNMENT = re.compile(
    r"""\b(?P<name>[A-Za-z_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY)(?:_KEY)?)\b\s*[:=]\s*(?P<q>["'])(?P<value>[^"'\n]{6,})(?P=q)""",
    re.IGNORECASE,
)
# docker-compose defaults such as ${POSTGRES_PASSWORD:-decodelab}.
COMPOSE_DEFAULT = re.compile(r"\$\{(?P<name>[A-Z_]*(?:SECRET|PASSWORD|TOKEN|KEY)[A-Z_]*):-(?P<value>[^}]+)\}")

# Deliberate exceptions, each with its reason.
ALLOWED_ASSIGNMENTS = {
    "decodelab/config/settings/test.py": "the pytest settings' throwaway key, never used to serve",
}
ALLOWED_COMPOSE_DEFAULTS = {
    # Service-to-service passwords for a laptop trial of the compose file; a deployment sets them
    # (README, "Security"). DJANGO_SECRET_KEY has no default there (`:?`): compose refuses to start.
    ("docker-compose.yml", "POSTGRES_PASSWORD"),
    ("docker-compose.yml", "REDIS_PASSWORD"),
}


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = [n for n in out.splitlines() if n.endswith((".py", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".sh"))]
    names += [n for n in out.splitlines() if n.rsplit("/", 1)[-1] in ("Dockerfile", ".env.example", "Makefile")]
    return [n for n in names if (ROOT / n).is_file()]


def is_test_file(name: str) -> bool:
    return name.startswith("tests/")


def test_no_tracked_file_holds_a_credential():
    files = tracked_files()
    assert len(files) > 50 and "decodelab/config/settings/production.py" in files
    found = []
    for name in files:
        text = (ROOT / name).read_text(errors="replace")
        for what, pattern in CREDENTIAL_FORMATS.items():
            found += [f"{name}: {what}: {m.group(0)[:12]}..." for m in pattern.finditer(text)]
    assert not found, "\n".join(found)


def test_no_secret_is_assigned_a_literal_outside_tests():
    """Application code reads secrets from the environment. Tests may use throwaway passwords."""
    found = []
    for name in tracked_files():
        if is_test_file(name) or name in ALLOWED_ASSIGNMENTS:
            continue
        for lineno, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), start=1):
            for m in SECRET_ASSIGNMENT.finditer(line):
                found.append(f"{name}:{lineno}: {m.group('name')} = {m.group('value')[:4]}...")
    assert not found, "\n".join(found)


def test_the_django_secret_key_is_read_from_the_environment_only():
    settings_dir = ROOT / "decodelab" / "config" / "settings"
    for path in settings_dir.glob("*.py"):
        rel = str(path.relative_to(ROOT))
        for line in path.read_text().splitlines():
            if re.match(r"\s*SECRET_KEY\s*=", line) and rel not in ALLOWED_ASSIGNMENTS:
                assert "env" in line or "_secret" in line.lower() or "SECRET" in line.split("=", 1)[1], (rel, line)
    production = (settings_dir / "production.py").read_text()
    assert 'env.str("DJANGO_SECRET_KEY"' in production


def test_compose_file_has_no_secret_defaults_beyond_the_documented_trial_ones():
    found = []
    for name in tracked_files():
        if not name.endswith((".yml", ".yaml")):
            continue
        for m in COMPOSE_DEFAULT.finditer((ROOT / name).read_text()):
            if (name, m.group("name")) not in ALLOWED_COMPOSE_DEFAULTS:
                found.append(f"{name}: ${{{m.group('name')}:-...}}")
    assert not found, "\n".join(found)
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "DJANGO_SECRET_KEY: ${DJANGO_SECRET_KEY:?" in compose  # required, no default


def test_the_patterns_catch_what_they_are_meant_to():
    """The scans above are not vacuous: each pattern finds a planted example."""
    planted = [
        'SECRET_KEY = "k3y-that-someone-pasted"',
        "DB_PASSWORD: 'hunter2hunter2'",
        'user_create(username="x", password="s3cr3t-pass")',
        'API_KEY="abcdef123456"',
    ]
    for line in planted:
        assert SECRET_ASSIGNMENT.search(line), line
    for harmless in ['tokenizer_family="smollm2"', 'SECRET_KEY = env.str("DJANGO_SECRET_KEY")', "password = None"]:
        assert not SECRET_ASSIGNMENT.search(harmless), harmless
    assert COMPOSE_DEFAULT.search("${REDIS_PASSWORD:-decodelab}")
    assert CREDENTIAL_FORMATS["GitHub token"].search("ghp_" + "a1" * 18)
    assert CREDENTIAL_FORMATS["private key"].search("-----BEGIN " + "RSA PRIVATE KEY-----")
