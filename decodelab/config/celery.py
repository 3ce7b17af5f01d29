"""The web side's Celery app: it dispatches `workers.decode` by name and runs the result
writer (`runs.store_result`, `runs.mark_running`) on the `results` queue."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "decodelab.config.settings.local")

app = Celery("decodelab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = "results"
app.autodiscover_tasks(["decodelab.runs", "decodelab.catalog"])
