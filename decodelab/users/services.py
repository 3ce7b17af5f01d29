from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from rest_framework.authtoken.models import Token

from decodelab.common.errors import ApplicationError
from decodelab.users.models import Role, User


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str
    token: str


@transaction.atomic
def user_create(*, username: str, role: str, password: str | None = None) -> NewUser:
    """Create a user with a generated password (unless given) and an API token."""
    if role not in Role.values:
        raise ApplicationError(f"must be one of {', '.join(Role.values)}", field="role")
    if not username or len(username) > 150:
        raise ApplicationError("must be 1 to 150 characters", field="username")
    if User.objects.filter(username=username).exists():
        raise ApplicationError(f"user {username!r} already exists", field="username")
    password = password or secrets.token_urlsafe(12)
    user = User(username=username, role=role)
    user.set_password(password)
    user.full_clean()
    user.save()
    token = Token.objects.create(user=user)
    return NewUser(user=user, password=password, token=token.key)
