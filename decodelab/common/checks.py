"""System checks. ``manage.py check``, ``migrate`` and ``runserver`` run them, so a deployment
with a weak secret key stops at its first management command (the compose file's web service
migrates before gunicorn starts)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
HOW_TO = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` is weak (the rule of Django's security.W009), or None."""
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE or key.startswith("django-insecure-"):
        return (
            f"it needs at least {SECRET_KEY_MIN_LENGTH} characters, {SECRET_KEY_MIN_UNIQUE} of them distinct, "
            f"and must not start with 'django-insecure-' (got {len(key)} characters, {len(set(key))} distinct)"
        )
    return None


@register()
def strong_secret_key(app_configs, **kwargs) -> list[Error]:
    """Production settings (DECODELAB_REQUIRE_STRONG_SECRET_KEY) refuse a weak DJANGO_SECRET_KEY."""
    if not getattr(settings, "DECODELAB_REQUIRE_STRONG_SECRET_KEY", False):
        return []
    why = secret_key_weakness(settings.SECRET_KEY)
    if why is None:
        return []
    return [Error(f"DJANGO_SECRET_KEY is too weak: {why}.", hint=HOW_TO.capitalize(), id="decodelab.E001")]
