"""Settings shared by every environment. Values that differ come from decodelab.config.env."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from decodelab.config.env import BASE_DIR, DATA_DIR, env, positive_int
from workers.reliability import TimePolicy

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "decodelab.common",
    "decodelab.users",
    "decodelab.catalog",
    "decodelab.runs",
    "decodelab.experiments",
    "decodelab.ratings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "decodelab.common.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "decodelab.config.urls"
WSGI_APPLICATION = "decodelab.config.wsgi.application"
AUTH_USER_MODEL = "users.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # sends each role to its own start page
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'decodelab.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the result writer writes; the busy timeout makes a
    # writer wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "frontend"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Login rate limits and other counters. The default local-memory cache is per process; with
# several web processes set DJANGO_CACHE_URL to a shared Redis (redis://host:6379/1).
CACHES = {"default": env.cache_url("DJANGO_CACHE_URL", default="locmemcache://")}
# Failed logins per (username, address) and per address within the window; past them: 429.
DECODELAB_LOGIN_MAX_FAILURES = positive_int("DECODELAB_LOGIN_MAX_FAILURES", 5)
DECODELAB_LOGIN_MAX_FAILURES_PER_IP = positive_int("DECODELAB_LOGIN_MAX_FAILURES_PER_IP", 50)
DECODELAB_LOGIN_WINDOW_S = positive_int("DECODELAB_LOGIN_WINDOW_S", 300)

# The API and the form accept at most this many bytes of request body (enforced by
# BodySizeLimitMiddleware before anything is parsed).
MAX_REQUEST_BODY_BYTES = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Prompt-set uploads (files up to 2 MB, decodelab.experiments.promptfiles): a body up to 4 MB is
# read so that a file over 2 MB gets a 400 naming it; a larger body gets the 413 above.
UPLOAD_MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
BODY_SIZE_LIMITS_BY_PATH = {
    "/api/v1/prompt-sets/upload/": UPLOAD_MAX_REQUEST_BODY_BYTES,
    "/experiments/prompt-sets/upload/": UPLOAD_MAX_REQUEST_BODY_BYTES,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated API call gets 401 with WWW-Authenticate: Token.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser with a nesting-depth bound (deep nesting is a RecursionError otherwise).
    "DEFAULT_PARSER_CLASSES": ["decodelab.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "decodelab.api.pagination.DefaultPagination",
    "EXCEPTION_HANDLER": "decodelab.api.exceptions.exception_handler",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DecodeLab API",
    "DESCRIPTION": "Compare decoding strategies: submit comparisons, read runs, outputs and metrics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the installed sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation's error answers (401, 403, 404, 400, 413, ...) in one Error shape.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "decodelab.api.schema.add_error_responses",
    ],
}

# --- Celery (web side: dispatch by task name, and the result writer) ---
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish while the broker is down must fail fast, not hang the request.
# Time limits per run, heartbeat and reaper thresholds, and the broker's visibility timeout,
# which must exceed the largest hard limit (checked here: a bad configuration fails at start).
try:
    DECODELAB_TIME_POLICY = TimePolicy.from_env(env.ENVIRON)
    DECODELAB_TIME_POLICY.check_visibility_timeout()
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "visibility_timeout": DECODELAB_TIME_POLICY.visibility_timeout_s,
}
# Seconds a run dispatched to the broker may be missing from its queue, not yet started,
# before the reaper takes it for lost (the broker restarted without it) and sends it again.
DECODELAB_LOST_GRACE_S = env.float("DECODELAB_LOST_GRACE_S", default=30.0)
# How often `manage.py reap` sweeps.
DECODELAB_REAP_EVERY_S = env.float("DECODELAB_REAP_EVERY_S", default=5.0)
RESULTS_QUEUE = "results"

# --- DecodeLab ---
DECODELAB_DEFAULT_MODEL = env.str("DECODELAB_DEFAULT_MODEL", default="smollm2-135m")
DECODELAB_MAX_PRESETS = positive_int("DECODELAB_MAX_PRESETS", 8)
# Runs a user may have queued or running at once; past it, new submissions get 429.
DECODELAB_MAX_RUNS_IN_FLIGHT = positive_int("DECODELAB_MAX_RUNS_IN_FLIGHT", 512)
DECODELAB_DATA_DIR = DATA_DIR

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
