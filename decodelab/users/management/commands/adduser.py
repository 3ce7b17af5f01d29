from django.core.management.base import BaseCommand, CommandError

from decodelab.common.errors import ApplicationError
from decodelab.users.models import Role
from decodelab.users.services import user_create


class Command(BaseCommand):
    help = "Create a user; prints its password and API token once (they are not shown again)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=Role.values, required=True)
        parser.add_argument("--password", help="Set this password instead of generating one.")

    def handle(self, *args, username, role, password=None, **options):
        try:
            new = user_create(username=username, role=role, password=password)
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from exc
        self.stdout.write(f"Created {role} {username!r}.")
        self.stdout.write(f"password: {new.password}")
        self.stdout.write(f"api token: {new.token}")
        self.stdout.write("Store them now: they are not shown again.")
