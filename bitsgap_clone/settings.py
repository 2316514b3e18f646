"""Settings for the dashboard. Everything that differs between machines comes from the
environment (or a `.env` file beside manage.py); see `.env.example`.

Production (DEBUG off) refuses to start without SECRET_KEY and FERNET_KEYS: they have no
default there.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from bitsgap_clone.venues import DEFAULT_VENUES
from exchanges.egress import EgressIpsError, parse_egress_ips

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win over the file. ENV_FILE points elsewhere (or nowhere).
environ.Env.read_env(os.environ.get("ENV_FILE", BASE_DIR / ".env"), overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development-only fallbacks. They are public, so they exist only when DEBUG is on.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105
_DEV_FERNET_KEY = "dev-only-fernet-key-never-use-in-production"

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY) if DEBUG else env.str("SECRET_KEY")
# Newest key first; older keys still decrypt, so a new key can be rolled in without downtime.
FERNET_KEYS = env.list("FERNET_KEYS", default=[_DEV_FERNET_KEY]) if DEBUG else env.list("FERNET_KEYS")

# Keyed hash of access keys (duplicate detection). Its own setting so SECRET_KEY can rotate.
KEY_FINGERPRINT_SECRET = (
    env.str("KEY_FINGERPRINT_SECRET", default=SECRET_KEY) if DEBUG else env.str("KEY_FINGERPRINT_SECRET")
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "accounts",
    "exchanges",
    "alerts",
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
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # allauth's UserSessionsMiddleware, writing its record at most once a minute per session.
    "accounts.middleware.UserSessionsMiddleware",
    "accounts.middleware.SessionLimitsMiddleware",
    "bitsgap_clone.middleware.HtmxRedirectMiddleware",
]

ROOT_URLCONF = "bitsgap_clone.urls"
WSGI_APPLICATION = "bitsgap_clone.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Each venue's folder holds its own help page: "<venue id>/help.html".
        "DIRS": [BASE_DIR / "templates", BASE_DIR / "exchanges" / "venues"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Connections are kept for a minute between requests and tasks rather than opened for each
# (a new PostgreSQL connection costs the server a process), and checked before reuse, so a
# database restart costs one failed check, not a broken pool. Each web or worker thread holds one.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# Celery's Django fixup closes every database connection after every task unless this is set
# (then after every 2 × this many): a new PostgreSQL connection per batch of checks, ~2 ms of the
# worker's CPU and a server process each. Set out of reach; bitsgap_clone/celery.py closes what
# Django itself would close (CONN_MAX_AGE, a broken connection) around each task instead.
CELERY_DB_REUSE_MAX = 10**9
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so worker processes started by the tests share the test database.
    # Named per process so two test runs on one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "bitsgap",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# In development a new user is logged in at once; verification mails go to the console.
ACCOUNT_EMAIL_VERIFICATION = env.str(
    "ACCOUNT_EMAIL_VERIFICATION", default="optional" if DEBUG else "mandatory"
)
ACCOUNT_LOGOUT_ON_GET = False
# Unknown email and wrong password get the same answer; reset and sign-up do not reveal accounts.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# Counted in the Redis cache. Failed logins per account: 5 per 5 minutes before a pause, and
# never more than 100 an hour (OWASP ASVS 2.2.1). "connect_key" (CONNECT_RATE_LIMIT) counts the
# API keys tried, new or replacements, per account and per IP address, so this site cannot be
# used to test a stolen list of keys against an exchange (exchanges/connect_limit.py). `make
# demo` sets a higher one for itself (bin/dev.py); production refuses to start without both parts.
CONNECT_RATE_LIMIT = env.str("CONNECT_RATE_LIMIT", default="10/h/user,30/h/ip")
_connect_per = {(p.strip().split("/") + ["ip"])[2] for p in CONNECT_RATE_LIMIT.split(",") if p.strip()}
if not DEBUG and not {"user", "ip"} <= _connect_per:
    raise ImproperlyConfigured(
        "CONNECT_RATE_LIMIT needs a per-user and a per-ip rate, e.g. 10/h/user,30/h/ip"
    )
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key,100/h/key",
    "signup": "20/m/ip,100/h/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "reauthenticate": "10/m/user",
    "manage_email": "10/m/user",
    "connect_key": CONNECT_RATE_LIMIT,
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Bitsgap Clone")
USERSESSIONS_TRACK_ACTIVITY = True
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "exchanges:connection-list"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="dashboard@localhost")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Sessions (OWASP ASVS level 2, 3.3): 30 minutes idle (the cookie's age, renewed by activity
# at most once a minute rather than by a write on every request), 12 hours at most since login
# (accounts.middleware.SessionLimitsMiddleware). The engine is Django's database store, which
# also tells that middleware when a session's server-side expiry needs renewing.
SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = False
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto.
    if env.bool("BEHIND_TLS_PROXY", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies append to X-Forwarded-For: allauth then rate-limits and logs the
# client's address, not the proxy's (which would put every user in one budget).
ALLAUTH_TRUSTED_PROXY_COUNT = env.int(
    "TRUSTED_PROXY_COUNT", default=1 if not DEBUG and env.bool("BEHIND_TLS_PROXY", default=True) else 0
)

# Content-Security-Policy (django-csp): no inline script, no eval, nothing from elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Exchanges ("venues") ----------------------------------------------------------------------
# The exchanges offered, one folder each under exchanges/venues/ (docs/adding-an-exchange.md).
VENUES = env.list("VENUES", default=DEFAULT_VENUES)
# Per venue, from the environment (<PREFIX> is the venue's env_prefix, e.g. HTX), read by
# exchanges.registry: <PREFIX>_API_URL (scheme, host and port; signed requests go there),
# <PREFIX>_CONNECT_TIMEOUT and <PREFIX>_READ_TIMEOUT (3.05 s, 10 s), <PREFIX>_MAX_CONCURRENT_REQUESTS
# (48: requests in flight at once across every worker on every machine, kept in Redis with the
# venue's own limits, see exchanges/venues/kit/gate.py), <PREFIX>_GATE_WAIT_SECONDS (20: how long a
# request waits for a slot before its check is retried later), <PREFIX>_CLOCK_SYNC_SECONDS (60:
# how often each worker process measures the venue's clock against its own).
# How often a connected key's balances are re-read, and how long tickers are shared.
BALANCE_REFRESH_SECONDS = env.int("BALANCE_REFRESH_SECONDS", default=300)
TICKERS_CACHE_SECONDS = env.int("TICKERS_CACHE_SECONDS", default=60)
# "Refresh now" at most this often per connection, so nobody can hammer HTX through us.
REFRESH_NOW_MIN_SECONDS = env.int("REFRESH_NOW_MIN_SECONDS", default=30)
# Balance history kept: every snapshot for a day, hourly for this many days, daily up to the last.
SNAPSHOT_HOURLY_DAYS = env.int("SNAPSHOT_HOURLY_DAYS", default=7)
SNAPSHOT_DAILY_DAYS = env.int("SNAPSHOT_DAILY_DAYS", default=365)
# This server's outgoing IP addresses, comma-separated IPv4 and IPv6 (e.g. 198.51.100.7,2001:db8::7):
# shown with a Copy button in every connect dialog and guide, so users can bind their keys to them
# (exchanges expire, strip or delete keys that are not bound), and compared with the addresses
# exchanges say they saw. Checked at startup: an entry that is not one address stops the server.
try:
    EGRESS_IPS = parse_egress_ips(env.str("EGRESS_IPS", default=""))
except EgressIpsError as error:
    raise ImproperlyConfigured(str(error)) from None
# A connection left in Verifying longer than this (lost message, dead worker) is queued again.
VERIFY_STALE_SECONDS = env.int("VERIFY_STALE_SECONDS", default=60)
# A key HTX refused after it had worked (IP list, permissions) is looked at again this often,
# so a fix made on HTX brings it back without the user doing anything here.
RECHECK_REFUSED_SECONDS = env.int("RECHECK_REFUSED_SECONDS", default=3600)
# A worker holds a connection this long; after that another may take it over (a worker that
# died mid-check) and the late worker's results are dropped. A check makes 4 HTX calls plus one
# per account, each bounded by the venue's timeouts, so the default leaves room for slow answers.
CHECK_CLAIM_SECONDS = env.int("CHECK_CLAIM_SECONDS", default=180)
# Backoff for transient HTX failures: base * 2**attempt, capped, with jitter.
RETRY_BASE_SECONDS = env.int("RETRY_BASE_SECONDS", default=30)
RETRY_MAX_SECONDS = env.int("RETRY_MAX_SECONDS", default=1800)

# --- Alerts (alerts/, docs/alerts.md) ---------------------------------------------------------
# Where the links in alert emails and webhooks point: this dashboard's public address.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
SITE_NAME = env.str("SITE_NAME", default="Bitsgap Clone")
# Mail goes through EMAIL_BACKEND (SMTP in production: EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD, EMAIL_USE_TLS / EMAIL_USE_SSL, read below), within this many seconds.
ALERT_SMTP_TIMEOUT = env.int("ALERT_SMTP_TIMEOUT", default=10)
# A failed delivery is tried again after base * 2**attempt seconds (capped), until this many hours
# after the alert; then it is shown as not delivered.
ALERT_RETRY_BASE_SECONDS = env.int("ALERT_RETRY_BASE_SECONDS", default=30)
ALERT_RETRY_MAX_SECONDS = env.int("ALERT_RETRY_MAX_SECONDS", default=900)
ALERT_GIVE_UP_HOURS = env.int("ALERT_GIVE_UP_HOURS", default=72)
# A worker holds a delivery this long while sending (far more than a send may take).
ALERT_CLAIM_SECONDS = env.int("ALERT_CLAIM_SECONDS", default=120)
ALERT_SWEEP_SECONDS = env.int("ALERT_SWEEP_SECONDS", default=15)
ALERT_SCAN_SECONDS = env.int("ALERT_SCAN_SECONDS", default=60)
# The daily digest's hour (in TIME_ZONE), for users who chose it.
ALERT_DIGEST_HOUR = env.int("ALERT_DIGEST_HOUR", default=8)
# The largest "days before a key dies" a user may choose.
ALERT_EXPIRY_MAX_DAYS = 30
# Webhooks: connect and read timeouts (s), the most of an answer read, and whether plain http to a
# loopback address is allowed (development and tests only; https to public addresses otherwise).
ALERT_WEBHOOK_TIMEOUT = (3.0, 5.0)
ALERT_WEBHOOK_MAX_BYTES = 64 * 1024
ALERT_WEBHOOK_ALLOW_LOOPBACK = env.bool("ALERT_WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
# Telegram's Bot API (sendMessage), configurable so tests and proxies can stand in for it.
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org")

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
# kombu's Redis transport, keeping its bookkeeping client (bitsgap_clone/broker.py). Only for
# redis:// URLs: rediss:// and sockets keep kombu's own handling of their scheme.
if REDIS_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "bitsgap_clone.broker:Transport"
# Keep Django's LOGGING (and its redaction filter) in worker processes too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged task is handed to another worker after this long. It must exceed the
# longest task; the claim on the row (CHECK_CLAIM_SECONDS) and the sweeper cover the rest.
# The thread pool does not enforce the time limits above; HTX calls have their own timeouts.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
# Do not hang a web request for long when Redis is down: the sweeper queues the work later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
# Beat's periodic tasks have a queue of their own, which every worker also consumes: a sweep
# is not stuck behind a wave of thousands of checks (and then discarded as expired).
# Alerts have theirs too (alerts.tasks), and so do the checks a user is waiting for (a new key,
# Refresh now, a replacement: exchanges.dispatch), so neither is stuck behind a refresh wave.
# Refreshes the sweeper spreads over time to fit a venue's per-IP budget (exchanges.budget) go
# to a queue of their own too: held until their turn, they are not stuck behind a wave of
# refreshes of other venues, and so do not start late all at once.
CELERY_TASK_QUEUES = (
    Queue("celery"),
    Queue("periodic"),
    Queue("alerts"),
    Queue("interactive"),
    Queue("paced"),
)
CELERY_TASK_ROUTES = {
    "exchanges.tasks.queue_due_checks": {"queue": "periodic"},
    "exchanges.tasks.prune_snapshots": {"queue": "periodic"},
    "alerts.tasks.*": {"queue": "alerts"},
}
SWEEP_SECONDS = env.int("SWEEP_SECONDS", default=30)
# How many due checks the sweeper puts in one task message. A batch is claimed in one query, its
# checks run side by side (a slow key delays no other), its plain refreshes are written together,
# and Celery's own cost per message (~2 ms of worker CPU) is shared: a refresh in a batch costs a
# fraction of one alone (a 10,000-key wave: 1.77 ms of worker CPU per refresh in batches of 40,
# 1.98 in batches of 20). 1: a message per connection. Checks a user waits for are never batched
# (exchanges/dispatch.py). See exchanges/batches.py, docs/deploy.md, docs/performance.md.
CHECK_BATCH_SIZE = env.int("CHECK_BATCH_SIZE", default=40)
# Threads per worker process that run the checks of batches side by side (exchanges/batches.py),
# beside Celery's own threads (--concurrency), which mostly wait for them. 0: a batch's checks
# run one after the other in the task's thread (tests inside one database transaction).
CHECK_THREADS = env.int("CHECK_THREADS", default=16)
CELERY_BEAT_SCHEDULE = {
    # Queues every connection due for a check: balance refreshes, retries after a transient
    # HTX failure, and submissions whose message was lost.
    "queue-due-checks": {
        "task": "exchanges.tasks.queue_due_checks",
        "schedule": timedelta(seconds=SWEEP_SECONDS),
        "options": {"expires": max(SWEEP_SECONDS - 1, 1)},
    },
    "prune-snapshots": {
        "task": "exchanges.tasks.prune_snapshots",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    # Alerts: deliveries due (retries, digests, messages lost with the broker), and what time
    # has brought (keys about to die, connections failing for longer than the user's threshold).
    "alerts-deliver-due": {
        "task": "alerts.tasks.deliver_due",
        "schedule": timedelta(seconds=ALERT_SWEEP_SECONDS),
        "options": {"expires": max(ALERT_SWEEP_SECONDS - 1, 1)},
    },
    "alerts-scan": {
        "task": "alerts.tasks.scan",
        "schedule": timedelta(seconds=ALERT_SCAN_SECONDS),
        "options": {"expires": max(ALERT_SCAN_SECONDS - 1, 1)},
    },
}

# --- Logging: secrets never reach a log line ------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "exchanges.logging.RedactSigningParams"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full request lines (AccessKeyId, Signature) at DEBUG.
        "urllib3": {"level": "WARNING"},
        "requests": {"level": "WARNING"},
    },
}
