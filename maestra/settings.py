"""One settings module, driven by environment variables.

Every helper below fails loudly (ImproperlyConfigured) on a value it cannot
read, so a typo in production is a crash at start, not a silent default.
"""

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Environment variable {name} is required")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
_DEV_SECRET = "dev-only-insecure-secret-key-change-me"
# A development key is only acceptable with DEBUG on or on the zero-setup SQLite
# database; a PostgreSQL (production) deployment must set its own.
_ON_SQLITE = os.environ.get("DATABASE_URL", "sqlite:").startswith("sqlite:")
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET if DEBUG or _ON_SQLITE else None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    # The kernel's own start-up registrations (maestra/apps.py).
    "maestra",
    # The audit log every app writes (maestra/audit/): part of the kernel.
    "maestra.audit",
    # Wake-ups of background work (maestra/wake/): part of the kernel too.
    "maestra.wake",
    "customers",
    "channels",
    "flows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

# Content-Security-Policy on every response (django-csp): scripts only from
# our own static files (no inline script, no inline event handler, no eval),
# so text that slips into a page unescaped cannot run. Inline styles stay
# allowed: the admin, Swagger UI and the canvas set them, and a style cannot
# run code. The admin's template preview serves a message's HTML on its own
# URL with a stricter policy of its own (channels/admin.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "frame-ancestors": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    }
}

ROOT_URLCONF = "maestra.urls"
WSGI_APPLICATION = "maestra.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: a SQLite file by default (zero setup), PostgreSQL through psycopg 3
# when DATABASE_URL says so (postgres://user@host:5432/name).
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
except Exception as exc:  # dj_database_url raises several types on bad input
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be parsed: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # One writer, no row locks: WAL lets readers go on while the worker writes,
    # IMMEDIATE takes the write lock at BEGIN so two writers queue instead of
    # failing half-way with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif _db["ENGINE"] not in ("django.db.backends.postgresql",):
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres:// (got {_db['ENGINE']})")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
TIME_ZONE = env_str("TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not an IANA time zone") from None

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# django-q2: the ORM broker by default (nothing else to run); Redis when
# REDIS_URL is set. Scale out by starting more `qcluster` processes.
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "maestra",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_TIMEOUT", 600) + 60,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Tasks",
    "sync": env_bool("Q_SYNC", False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # The same Redis holds the cache, so what lives there (the API's per-key
    # throttle counters) is shared by every web process and machine.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- Maestra ---------------------------------------------------------------
# How many runs the engine moves per batch, and how many passes of one run a
# single tick may make (a guard against loops between flows).
MAESTRA_BATCH_SIZE = env_int("MAESTRA_BATCH_SIZE", 2000)
MAESTRA_MAX_PASSES_PER_TICK = env_int("MAESTRA_MAX_PASSES_PER_TICK", 50)
MAESTRA_MAX_EVENT_DEPTH = env_int("MAESTRA_MAX_EVENT_DEPTH", 5)
# Seconds between sweeps of the periodic django-q2 task: the safety net of
# the wake-ups below.
MAESTRA_SWEEP_SECONDS = env_int("MAESTRA_SWEEP_SECONDS", 60)
# Wake-ups (maestra/wake/, docs/flows-core.md): an event, a customer change
# or a launch wakes the engine, a queued message wakes delivery, right after
# the commit (a django-q2 task; on PostgreSQL also NOTIFY to a listener thread
# in the cluster). Off: only the periodic sweeps run the work.
MAESTRA_WAKE = env_bool("MAESTRA_WAKE", True)
# PostgreSQL only: each qcluster worker runs a LISTEN thread (one holds the lock).
MAESTRA_WAKE_LISTENER = env_bool("MAESTRA_WAKE_LISTENER", True)
# While a queued run is pending, more wakes queue nothing; after this many
# seconds unclaimed it counts as lost and the next wake queues another.
MAESTRA_WAKE_COALESCE_SECONDS = env_int("MAESTRA_WAKE_COALESCE_SECONDS", 10)
# A/B statistics: which events are conversions (revenue from payload "total" or
# "revenue"), counted within this window after the run passed the A/B node.
MAESTRA_CONVERSION_EVENT_TYPES = env_list("MAESTRA_CONVERSION_EVENT_TYPES", ["order_created", "order"])
MAESTRA_AB_ATTRIBUTION_WINDOW = env_str("MAESTRA_AB_ATTRIBUTION_WINDOW", "P7D")
# A/B winner (flows/engine/ab_winner.py): an undecided node whose variants
# reached their minimum sample is tested at most once per this many seconds
# (shared by the workers through the cache); 0 tests it on every tick.
MAESTRA_AB_WINNER_CHECK_SECONDS = env_int("MAESTRA_AB_WINNER_CHECK_SECONDS", 300)

# --- Channels ----------------------------------------------------------------
# Delivery of the outbox (channels/). The defaults keep every message on this
# machine (console email, console SMS/push); webhooks use the real HTTP client
# but refuse private, loopback and link-local destinations.
# See channels/README-backends.md for every variable with an example.
import json as _json  # noqa: E402


def _env_json(name: str, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return _json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None


EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Never block a delivery worker forever on a silent SMTP server.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
MAESTRA_EMAIL_FROM = env_str("MAESTRA_EMAIL_FROM", "Maestra <noreply@localhost>")
# Domain of the Message-ID header (<maestra-{id}@domain>); empty = the From domain.
MAESTRA_EMAIL_MESSAGE_ID_DOMAIN = os.environ.get("MAESTRA_EMAIL_MESSAGE_ID_DOMAIN", "")

MAESTRA_CHANNEL_BACKENDS = {
    "email": env_str("MAESTRA_EMAIL_CHANNEL_BACKEND", "channels.backends.email.DjangoEmailBackend"),
    "sms": env_str("MAESTRA_SMS_BACKEND", "channels.backends.console.ConsoleBackend"),
    "mobile_push": env_str("MAESTRA_MOBILE_PUSH_BACKEND", "channels.backends.console.ConsoleBackend"),
    "web_push": env_str("MAESTRA_WEB_PUSH_BACKEND", "channels.backends.console.ConsoleBackend"),
    "webhook": env_str("MAESTRA_WEBHOOK_BACKEND", "channels.backends.webhook.WebhookBackend"),
}
# HttpJsonBackend, per channel: {"url", "headers", "body", "timeout", "id_field"}.
MAESTRA_HTTP_JSON = {
    "sms": _env_json("MAESTRA_SMS_HTTP_JSON", {}),
    "mobile_push": _env_json("MAESTRA_MOBILE_PUSH_HTTP_JSON", {}),
}
# BatchJsonBackend (a provider's batch API), per channel:
# {"sms": {"url", "headers", "item", "envelope", "batch_size", "results", "id_field", "error_field", "timeout"}}
# (channels/backends/batch_json.py, docs/delivery.md).
MAESTRA_BATCH_JSON = _env_json("MAESTRA_BATCH_JSON", {})
# Parallel SMTP sessions of one delivery worker (each reused for the whole drain).
MAESTRA_SMTP_CONNECTIONS = env_int("MAESTRA_SMTP_CONNECTIONS", 4)
# Per-provider send rates, "email=50/s,sms=10/s" (N/s, N/m or N/h; empty: none),
# never exceeded across workers and machines (channels/ratelimit.py).
MAESTRA_RATE_LIMITS = env_str("MAESTRA_RATE_LIMITS", "")

# Provider errors (5xx, 429, timeouts): this many more tries, this far apart.
MAESTRA_MAX_RETRIES = env_int("MAESTRA_MAX_RETRIES", 3)
MAESTRA_RETRY_DELAY = env_int("MAESTRA_RETRY_DELAY", 300)
# A claimed message must be sent within this many seconds, or its outcome is
# unknown (failed, never re-sent). Claims are made in chunks small enough
# that a chunk of slow sends fits inside one lease.
MAESTRA_DELIVERY_LEASE = env_int("MAESTRA_DELIVERY_LEASE", 900)
MAESTRA_DELIVERY_CHUNK = env_int("MAESTRA_DELIVERY_CHUNK", 100)
# At most this many messages of one channel are handed to a backend that sends
# in parallel (email over MAESTRA_SMTP_CONNECTIONS) and marked `sending`
# together: what a crash of the worker may leave with an unknown outcome.
# 0 (the default): one message per SMTP session, so what is `sending` is
# exactly what is inside a provider call (SPEC §12: a crash loses at most the
# messages in flight). Larger groups trade that bound for throughput.
MAESTRA_DELIVERY_GROUP = env_int("MAESTRA_DELIVERY_GROUP", 0)
# A drain task that finds a backlog of at least two chunks asks this many
# django-q2 workers in all (itself included) to drain together.
MAESTRA_DELIVERY_WORKERS = env_int("MAESTRA_DELIVERY_WORKERS", 2)

# The communication policy across flows (channels/policy.py, docs/channels.md):
# marketing messages wait while the customer's local time is inside the quiet
# hours ("21:00-08:00", may wrap midnight; empty: none), read in
# Customer.timezone, else MAESTRA_QUIET_HOURS_TIMEZONE (empty: TIME_ZONE);
# and at most N marketing messages per customer per channel in any rolling
# period ("email=3/P1D,sms=1/P7D"; empty: no cap). Service templates are exempt.
# Checked at start by channels/checks.py (a bad value stops the process).
MAESTRA_QUIET_HOURS = env_str("MAESTRA_QUIET_HOURS", "")
MAESTRA_QUIET_HOURS_TIMEZONE = env_str("MAESTRA_QUIET_HOURS_TIMEZONE", "")
MAESTRA_FREQUENCY_CAPS = env_str("MAESTRA_FREQUENCY_CAPS", "")

MAESTRA_WEBHOOK_TIMEOUT = env_int("MAESTRA_WEBHOOK_TIMEOUT", 10)
# Private/loopback/link-local destinations allowed anyway: host, host:port or CIDR.
MAESTRA_WEBHOOK_ALLOWED_HOSTS = env_list("MAESTRA_WEBHOOK_ALLOWED_HOSTS", [])

MAESTRA_VAPID_PRIVATE_KEY = os.environ.get("MAESTRA_VAPID_PRIVATE_KEY", "")
# The browser's applicationServerKey; printed with the private key by generate_vapid_keys.
MAESTRA_VAPID_PUBLIC_KEY = os.environ.get("MAESTRA_VAPID_PUBLIC_KEY", "")
MAESTRA_VAPID_SUBJECT = env_str("MAESTRA_VAPID_SUBJECT", "mailto:admin@localhost")
MAESTRA_WEBPUSH_TTL = env_int("MAESTRA_WEBPUSH_TTL", 86400)
MAESTRA_WEBPUSH_TIMEOUT = env_int("MAESTRA_WEBPUSH_TIMEOUT", 10)
# Push endpoints come from browsers, so they get the same private-address guard.
MAESTRA_WEBPUSH_ALLOWED_HOSTS = env_list("MAESTRA_WEBPUSH_ALLOWED_HOSTS", [])

# --- API ---------------------------------------------------------------------
# REST API v1 under /api/ (maestra/api/, docs/api.md): API keys from
# djangorestframework-api-key (`manage.py create_api_key NAME`, or the admin),
# OpenAPI by drf-spectacular, Swagger UI from local static files (sidecar).
INSTALLED_APPS += [
    "rest_framework_api_key",
    # The API's keys with their scopes (maestra/api/models.py); the library's
    # own APIKey table only held the keys made before scopes.
    "maestra.api",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]
# Largest request body the API parses (bytes); larger ones get a JSON 413.
MAESTRA_API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAESTRA_API_MAX_BODY_BYTES
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "maestra.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["maestra.api.auth.HasAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["maestra.api.auth.ApiKeyThrottle"],
    # Requests per API key (or staff user), e.g. "1200/min", "50/s"; empty: no limit.
    # The counters live in Django's cache: Redis when REDIS_URL is set (shared by
    # every process), otherwise per process.
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_THROTTLE_RATE", "1200/min") or None},
    "DEFAULT_PARSER_CLASSES": ["maestra.api.parsers.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "maestra.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "maestra.api.schema.MaestraAutoSchema",
    "EXCEPTION_HANDLER": "maestra.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Maestra flows API",
    "DESCRIPTION": "Customers, events, flows and their building blocks. Every /api/v1/ endpoint needs the "
    "header `Authorization: Api-Key <key>`. Errors are JSON: "
    '{"errors": [{"index"?, "node"?, "field", "message"}]}. See docs/api.md.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page hold no data; API_DOCS_PUBLIC=false hides them behind a key or staff login.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"]
    if env_bool("API_DOCS_PUBLIC", True)
    else ["maestra.api.auth.HasApiKeyOrStaff"],
    "SERVE_AUTHENTICATION": [
        "maestra.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "maestra.api.schema.add_components",
        # Each app's own components and examples (the kernel imports no app).
        "customers.api_schema.add_schema",
        "channels.api_schema.add_schema",
        "flows.api.schema.add_schema",
    ],
    "ENUM_NAME_OVERRIDES": {
        "FlowStatusEnum": "flows.models.Flow.Status",
        "SubscriptionStatusEnum": "customers.models.Subscription.Status",
    },
}

# --- Consent ---
# Confirm / unsubscribe / preferences links in messages (channels/links.py,
# docs/consent.md): signed tokens bound to a customer and a channel, valid for
# this many seconds, on public pages under this base URL.
MAESTRA_LINK_MAX_AGE = env_int("MAESTRA_LINK_MAX_AGE", 60 * 24 * 3600)
MAESTRA_PUBLIC_BASE_URL = env_str("MAESTRA_PUBLIC_BASE_URL", "http://127.0.0.1:8000")
# Email engagement tracking (channels/tracking.py, docs/channels.md): off,
# no email gets tracked links or the open pixel, whatever its template says.
MAESTRA_EMAIL_TRACKING = env_bool("MAESTRA_EMAIL_TRACKING", True)
# Shared secret of POST /api/v1/inbound/provider-events (header
# X-Maestra-Inbound-Secret); empty: the endpoint refuses everything.
MAESTRA_INBOUND_SECRET = env_str("MAESTRA_INBOUND_SECRET", "")
# Activity detail (node passes of ended runs, message contents) older than
# this is pruned daily (flows/retention.py); at least P30D.
MAESTRA_ACTIVITY_RETENTION = env_str("MAESTRA_ACTIVITY_RETENTION", "P90D")
# Who gets limitation / promo pool alerts when a flow has no owner with an email.
MAESTRA_ALERT_EMAILS = env_list("MAESTRA_ALERT_EMAILS", [])
