import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from decodelab.users.models import User


@pytest.mark.django_db
def test_adduser_prints_a_password_and_token_that_work():
    out = io.StringIO()
    call_command("adduser", "lin", "--role", "researcher", stdout=out)
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line)
    user = User.objects.get(username="lin")
    assert user.role == "researcher" and user.check_password(lines["password"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {lines['api token']}")
    assert client.get("/api/v1/strategies/").status_code == 200


@pytest.mark.django_db
def test_adduser_refuses_a_duplicate_name():
    call_command("adduser", "lin", "--role", "researcher", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("adduser", "lin", "--role", "researcher", stdout=io.StringIO())
