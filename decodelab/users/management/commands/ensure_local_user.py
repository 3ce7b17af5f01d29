"""Used by `make run`: create the local researcher account once and print how to log in."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from decodelab.users.models import Role, User
from decodelab.users.services import user_create


class Command(BaseCommand):
    help = "Create the local researcher account on first run; print its credentials."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="researcher")

    def handle(self, *args, username, **options):
        # The credentials live in the data folder (mode 600), next to the SQLite file they open.
        path = settings.DECODELAB_DATA_DIR / "local-credentials.json"
        if not User.objects.filter(username=username).exists():
            new = user_create(username=username, role=Role.RESEARCHER)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"username": username, "password": new.password, "token": new.token}))
            path.chmod(0o600)
            self.stdout.write(self.style.SUCCESS(f"Created the local researcher account {username!r}."))
        if path.exists():
            creds = json.loads(path.read_text())
            self.stdout.write(f"  log in as:  {creds['username']} / {creds['password']}")
            self.stdout.write(f"  API token:  {creds['token']}   (Authorization: Token <token>)")
            self.stdout.write(f"  (kept in {path})")
        else:
            self.stdout.write(f"  log in as {username!r} (password set earlier; `manage.py changepassword {username}`)")
