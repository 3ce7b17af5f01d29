"""pytest: fast hashing, eager nothing (tests that need a broker start a real one)."""

from decodelab.config.settings.base import *  # noqa: F403

SECRET_KEY = "test-only-secret-key-not-for-production-use-0123456789"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = None  # served from frontend/ through the finders; no collectstatic needed
