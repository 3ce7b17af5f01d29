"""docker-compose.yml is for people (CI has no Docker engine); check that it parses and has the shape."""

import json
import os
import subprocess
import sys

import yaml

from tests.support.servers import ROOT


def test_compose_file_names_postgres_redis_web_reaper_and_a_worker_per_model_queue():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "results", "reaper"} <= set(services)
    assert services["reaper"]["command"] == "python manage.py reap"
    workers = [name for name in services if name.startswith("worker-")]
    assert workers, "at least one decode worker"
    for name in workers:
        command = services[name]["command"]
        assert "-Q decode." in command and "-c 1" in command and "--prefetch-multiplier 1" in command
    env = services["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and env["CELERY_BROKER_URL"].startswith("redis://")
    assert "--appendonly" in services["redis"]["command"] and "--requirepass" in services["redis"]["command"]
    queues = [services[name]["command"].split("-Q ")[1].split()[0] for name in workers]
    assert len(set(queues)) == len(queues), "one worker service per model queue"
    assert "gunicorn" in services["web"]["command"]


def test_production_settings_take_the_database_and_broker_from_the_environment():
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps([settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['HOST'], "
        "settings.CELERY_BROKER_URL]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "decodelab.config.settings.production",
        "DJANGO_SECRET_KEY": "scale-out-shape-test-" + "0123456789abcdef" * 3,
        "DATABASE_URL": "postgres://u:p@db.internal:5432/decodelab",
        "CELERY_BROKER_URL": "redis://:pw@redis.internal:6379/0",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [
        "django.db.backends.postgresql",
        "db.internal",
        "redis://:pw@redis.internal:6379/0",
    ]
