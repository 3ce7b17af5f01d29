"""Scale-out: Postgres via DATABASE_URL, a shared Redis, secrets from the environment only.

Secure by default; `make check-deploy` (`manage.py check --deploy --fail-level WARNING`) passes
with nothing but DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and DATABASE_URL set. Behind a reverse
proxy that terminates TLS, set DJANGO_BEHIND_TLS_PROXY=true so Django trusts the proxy's
X-Forwarded-Proto header (only when the proxy sets that header itself and strips it from
clients' requests); the redirect to HTTPS then never loops.
"""

from django.core.exceptions import ImproperlyConfigured

from decodelab.config.settings.base import *  # noqa: F403


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")  # noqa: F405
    if not key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production settings read the secret key from the environment only; "
            'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    return key


SECRET_KEY = _secret_key()
# A weak key (Django's W009 rule) is a system-check error (decodelab.E001): `check`, `migrate` and
# `runserver` refuse to go on. Not an import-time error, so build steps such as collectstatic,
# which need no real key, still run with a placeholder.
DECODELAB_REQUIRE_STRONG_SECRET_KEY = True
DEBUG = False

# Cookies only over HTTPS; the CSRF cookie stays readable by nothing but Django's own checks.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)  # noqa: F405
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)  # noqa: F405
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):  # noqa: F405
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# One year of HSTS; browsers ignore the header on plain HTTP, so a plain-HTTP trial is unaffected.
# "preload" only allows submitting the domain to the browsers' preload list; nothing is submitted.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)  # noqa: F405
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)  # noqa: F405
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)  # noqa: F405
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
