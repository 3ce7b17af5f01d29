"""Record the models installed on this machine (the embedded, one-machine setup; on a cluster
the workers report their own when they start)."""

import socket
from importlib.metadata import version

from django.core.management.base import BaseCommand

from decodelab.catalog.services import models_report
from workers.models import CATALOG, model_status


class Command(BaseCommand):
    help = "Record which models are installed and prepared on this machine."

    def add_arguments(self, parser):
        parser.add_argument("--dtype", default="float32")

    def handle(self, *args, dtype, **options):
        tf = version("transformers")
        statuses = [model_status(spec, dtype, tf) for spec in CATALOG.values()]
        models_report(reporter=f"sync_models@{socket.gethostname()}", models=statuses)
        ready = [s["name"] for s in statuses if s["installed"]]
        self.stdout.write(f"Models installed here: {', '.join(ready) or 'none'}")
