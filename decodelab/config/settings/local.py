"""`make run` on one machine: SQLite, a local redis-server, one worker."""

from decodelab.config.env import DATA_DIR
from decodelab.config.settings.base import *  # noqa: F403
from decodelab.config.settings.base import SECRET_KEY as _BASE_SECRET

DEBUG = env.bool("DJANGO_DEBUG", default=False)  # noqa: F405


def _local_secret() -> str:
    # A per-checkout secret, created once and kept in the data folder, so a fresh clone
    # needs no manual step and sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _BASE_SECRET or _local_secret()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = None  # served from frontend/ through the finders; no collectstatic needed
