"""KWS Admin settings: the only module that reads the environment.

Every variable is named ``KWS_*``; secrets may also come from a file named by
``KWS_<NAME>_FILE``. Bad values fail loudly with ImproperlyConfigured.
"""

import math
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(f"KWS_{name}", default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(f"KWS_{name}")
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"KWS_{name}={raw!r} is not a boolean (use true or false)")


def env_float(
    name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = os.environ.get(f"KWS_{name}")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"KWS_{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ImproperlyConfigured(f"KWS_{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"KWS_{name}={raw!r} must be at most {maximum}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(f"KWS_{name}")
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"KWS_{name}={raw!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else " up")
        raise ImproperlyConfigured(f"KWS_{name}={raw!r} must be a whole number {bounds}")
    return value


def env_secret(name: str, default: str = "") -> str:
    """A secret from KWS_<NAME>, or from the file named by KWS_<NAME>_FILE."""
    path = os.environ.get(f"KWS_{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"KWS_{name}_FILE: cannot read {path}: {exc}") from None
    return os.environ.get(f"KWS_{name}", default)


# --- The node --------------------------------------------------------------

# Where an embedded node keeps its database, broker queue and beat schedule.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var" / "node"))).resolve()
NODE_NAME = env_str("NODE_NAME", "kws")
# Only in the demo (kws_admin/demo.py sets it on the backup): the launcher's control folder,
# so the backup's Status page can fail the master and bring it back (core/demo_control.py).
DEMO_CONTROL_DIR = env_str("DEMO_CONTROL_DIR")
# Which of the node's processes this is (web, worker, beat, cli); set by the launcher.
PROCESS_ROLE = env_str("PROCESS_ROLE", "cli")
# The firmware this server runs; a backup joins only a master with the same firmware.
FIRMWARE_VERSION = env_str("FIRMWARE", "PCS06B")
# The license vendor's Ed25519 public key (base64 of its 32 bytes, or PEM); from
# KWS_LICENSE_PUBLIC_KEY or the file named by KWS_LICENSE_PUBLIC_KEY_FILE. Licensing
# checks it where a code is installed and says so when it is missing or broken.
LICENSE_PUBLIC_KEY = env_secret("LICENSE_PUBLIC_KEY")

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    # A node without a configured key keeps a generated one in its data folder, so
    # sessions survive a restart and the key never sits in the repository.
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        SECRET_KEY = key_file.read_text().strip()
    else:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        SECRET_KEY = secrets.token_urlsafe(50)
        key_file.write_text(SECRET_KEY)
        key_file.chmod(0o600)

ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    # Before django.contrib.auth, so that its createsuperuser and changepassword (which
    # would bypass replication) are replaced by ones that name manage.py kwsadmin.
    "accounts.commands",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    # Failed logins are counted and locked out per account and address (see Auth below).
    "axes",
    "django_tables2",
    "django_filters",
    # Bottom to top, as the layers are (pyproject.toml, [tool.importlinter]): each app
    # registers its configuration keys and replicated entities with core in this order,
    # and a snapshot restores the entities in it.
    "core",
    "accounts",
    "licensing",
    "phonebook",
    "basestations",
    "users",
    "redundancy",
    "messaging",
    "kws_admin",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kws_admin.middleware.AuditContextMiddleware",
    "kws_admin.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.middleware.PasswordChangeRequiredMiddleware",
    # An operator account's writes are refused (403) but for a short allow-list.
    "accounts.middleware.OperatorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "kws_admin.middleware.IdleSessionMiddleware",
    "kws_admin.middleware.LockedMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kws_admin.urls"
WSGI_APPLICATION = "kws_admin.wsgi.application"

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
                "kws_admin.context_processors.node",
            ],
        },
    },
]

# --- Storage: SQLite embedded, PostgreSQL with KWS_DATABASE_URL ---------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        # Persistent connections are checked before reuse: after the database was lost
        # and came back, the next request reconnects instead of failing.
        DATABASES = {
            "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
        }
    except ValueError as exc:
        raise ImproperlyConfigured(f"KWS_DATABASE_URL: {exc}") from None
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Web, worker and beat write the same file: WAL lets readers run beside
            # the writer, IMMEDIATE takes the write lock up front instead of failing
            # an upgrade half way through a transaction.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Tests use a file too, not SQLite's shared in-memory database, whose locks
            # ignore the timeout: concurrent writers must wait as on a real node.
            "TEST": {"NAME": str(DATA_DIR / "test-db.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "status"
LOGOUT_REDIRECT_URL = "login"
# Argon2id first (accounts/hashers.py says why); PBKDF2 hashes still verify and upgrade.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_NAME = f"kws_session_{NODE_NAME}"
# A session ends after this long without the administrator doing anything (the pages'
# own polling does not count: kws_admin.middleware.IdleSessionMiddleware).
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_MINUTES", 30, minimum=1) * 60
SESSION_COOKIE_AGE = max(SESSION_IDLE_SECONDS, 12 * 3600)
# django-axes: after this many failed logins of one account from one address, that
# account is locked out from that address for the cool-off time (an event says so);
# `manage.py axes_reset_username NAME` lifts it at once, from the server's console.
# AccountBackend is ModelBackend loading the password-change mark with the account.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.AccountBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- Pages: no inline script or style; framing, referrers, HTTPS ----------------

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Served over HTTPS (a TLS proxy in front of the node): secure cookies and HSTS.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_COOKIE_NAME = f"kws_csrf_{NODE_NAME}"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve from the finders so a node needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Celery: an embedded filesystem broker, Redis with KWS_BROKER_URL --------

BROKER_URL = env_str("BROKER_URL")
# For tests only: the embedded broker writes every N-th message torn, as kombu's race
# would, to show that the worker sets it aside and lives on (0 = off; not with Redis).
BROKER_TORN_EVERY = env_int("BROKER_TORN_EVERY", 0, minimum=0)
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Beat stamps its liveness at every tick (core.health).
CELERY_BEAT_SCHEDULER = "kws_admin.beat:Scheduler"
if BROKER_URL:
    CELERY_BROKER_URL = BROKER_URL
else:
    BROKER_DIR = DATA_DIR / "broker"
    for _folder in ("queue", "processed", "control", "rejected"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport, but a message is renamed into place whole and a bad
    # file is set aside (kombu #1551 killed the worker). kombu 5.7 takes an import path
    # only as the transport, never as a URL scheme.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "kws_admin.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # The exchange tables; kombu's default is "control" in the working directory,
        # which the two nodes of the demo shared (both run from the repository root).
        "control_folder": str(BROKER_DIR / "control"),
        "rejected_folder": str(BROKER_DIR / "rejected"),
        "polling_interval": 0.1,
        "kws_torn_every": BROKER_TORN_EVERY,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A lost broker is retried for ever, not 100 times: a node never stops by itself on a
# transient error (the stale stamps say it is unwell meanwhile).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Threads that run the Django application in the web process (kws_admin.asgi): the GUI,
# the peer API and the device keep-alives; the XML-RPC API waits without one.
WEB_THREADS = env_int("WEB_THREADS", 8, minimum=1)
# Where the web server answers device keep-alive datagrams (basestations.udp): its own
# host:port (the cluster and docker-compose set it); empty: devices keep to HTTP.
DEVICE_UDP = env_str("DEVICE_UDP", "")
# The XML-RPC API (messaging/): a handset no base station names is paged this long and
# then reported out of range (the KWS's 12 s); a session without a call for
# RPC_IDLE_TIMEOUT seconds ends; an application has at most RPC_MAX_PENDING messages on
# their way (the vendor's advice for a KWS6000: 16).
RPC_PAGING_TIMEOUT = env_float("RPC_PAGING_TIMEOUT", 12.0, minimum=0.5)
RPC_IDLE_TIMEOUT = env_float("RPC_IDLE_TIMEOUT", 120.0, minimum=5.0)
RPC_MAX_PENDING = env_int("RPC_MAX_PENDING", 16, minimum=1)
# Heartbeat and detection settings of the redundancy engine (seconds).
HEARTBEAT_INTERVAL = env_float("HEARTBEAT_INTERVAL", 1.0, minimum=0.1)
# Two missed beats at the default interval: detection within 2-3 s (the seed allows 15 s);
# failover_time, not this window, guards against a takeover on a short hiccup.
# The seed's bound: a failure is detected within 15 s.
DETECTION_WINDOW = env_float("DETECTION_WINDOW", 2.0, minimum=0.5, maximum=15.0)
if DETECTION_WINDOW <= HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        f"KWS_DETECTION_WINDOW={DETECTION_WINDOW} must be longer than the heartbeat interval "
        f"KWS_HEARTBEAT_INTERVAL={HEARTBEAT_INTERVAL}, or every beat would be late"
    )

# --- Logging: every line names the node and the process --------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"node": {"()": "kws_admin.logging.NodeFilter"}},
    "formatters": {
        "node": {
            "format": (
                "%(asctime)s [%(node)s/%(role)s %(process)d] %(levelname)s %(name)s: %(message)s"
            )
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["node"], "formatter": "node"}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
        # One line per task every second drowns what matters; failures still show.
        "celery.beat": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "kombu.connection": {"level": "ERROR"},
        # A line per failed login; the lockout itself is an event (accounts.signals).
        "axes": {"level": "WARNING"},
    },
}

# Seconds between the samples of the Statistics page's chart (shorter in tests).
STATISTICS_SAMPLE_EVERY = env_float("STATISTICS_SAMPLE_EVERY", 300.0, minimum=1.0)
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "redundancy.heartbeat",
        "schedule": HEARTBEAT_INTERVAL,
        # A missed tick is worthless later: never let ticks pile up in the queue.
        "options": {"expires": HEARTBEAT_INTERVAL * 2},
    },
    "housekeeping": {"task": "redundancy.housekeeping", "schedule": 60.0},
    # The backup pulls configuration changes (the master also nudges it after each commit).
    "replication-pull": {
        "task": "redundancy.replication_pull",
        "schedule": HEARTBEAT_INTERVAL,
        "options": {"expires": HEARTBEAT_INTERVAL * 2},
    },
    "replication-trim": {"task": "redundancy.replication_trim", "schedule": 300.0},
    # A sample for the Statistics page's chart of the last 24 hours.
    "statistics-sample": {
        "task": "redundancy.statistics_sample",
        "schedule": STATISTICS_SAMPLE_EVERY,
    },
}
