"""AI Canvas settings: one module, driven by the environment (django-environ).

With nothing set and DEBUG=1 it runs embedded: SQLite and the in-memory channel layer.
Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and CRYPTOGRAPHY_KEY;
outside DEBUG those secrets have no default. See docs/operations.md for every variable.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from canvas.core.throttle_rates import DEFAULT_RATES, parse_rates

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the environment win over the file. `make run` writes a development
# .env when there is none (canvas/devenv.py); ENV_FILE names another file.
ENV_FILE = Path(os.environ.get("ENV_FILE") or BASE_DIR / ".env")
if ENV_FILE.is_file():
    env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

# Development values exist only in DEBUG; outside it these variables are required.
_DEV_SECRET = "dev-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET) if DEBUG else env("SECRET_KEY")
ALLOWED_HOSTS = (
    env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
    if DEBUG
    else env.list("ALLOWED_HOSTS")
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Encrypts and signs the stored provider keys (django-cryptography). Any string; it is
# stretched by PBKDF2. Independent of SECRET_KEY so that SECRET_KEY can rotate alone.
_DEV_CRYPTOGRAPHY_KEY = "dev-only-cryptography-key"  # noqa: S105
CRYPTOGRAPHY_KEY = (
    env("CRYPTOGRAPHY_KEY", default=_DEV_CRYPTOGRAPHY_KEY) if DEBUG else env("CRYPTOGRAPHY_KEY")
)

INSTALLED_APPS = [
    "daphne",
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
    "axes",
    "channels",
    "canvas",
    "canvas.core",
    "graphs",
    "workflows",
    "chat",
    "integrations",
]

MIDDLEWARE = [
    # First: errors under /api/ are JSON whatever answers them (a bad Host, a body too large).
    "canvas.core.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The database or Redis away: 503 with Retry-After, never 500 (DRF views: the exception
    # handler; this covers the rest).
    "canvas.core.exceptions.UnavailableMiddleware",
    # Last, as django-axes asks: it answers a locked-out login attempt.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "canvas.urls"
WSGI_APPLICATION = "canvas.wsgi.application"
ASGI_APPLICATION = "canvas.asgi.application"

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

# --- Database -------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
# Connections a process keeps for reuse: psycopg's pool on PostgreSQL; on SQLite, idle
# connections (canvas/sqlite), since each request and socket call would otherwise open one.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=20)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Django's advice under ASGI: no persistent connections; psycopg's pool instead.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
    # Parameters bound by the server, not quoted into the SQL text by psycopg in Python: a
    # run's flush binds ~400 values (10 nodes), and the client-side quoting was 14 % of the
    # serving process's CPU over PostgreSQL (py-spy). Django supports it since 4.2.
    _db["OPTIONS"]["server_side_binding"] = env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
    # Statements run again on a connection are prepared by the server after this many runs
    # (psycopg's own default, 5), so PostgreSQL parses and plans them once per connection: a
    # run's repeated statements cost the server half the CPU (8.4-9.9 -> 4.7-5.0 ms of the
    # server's CPU per 10-node run, docs/benchmarks.md). Django turns it off by default for
    # transaction-pooling proxies; this process's pool holds its connections itself. Empty:
    # off, for a pgbouncer in transaction mode older than 1.21.
    _db["OPTIONS"]["prepare_threshold"] = (
        env.int("DATABASE_PREPARE_THRESHOLD", default=5)
        if env.str("DATABASE_PREPARE_THRESHOLD", default="5")
        else None
    )
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["ENGINE"] = "canvas.sqlite"
    # WAL lets readers run beside the one writer; synchronous=NORMAL drops the fsync per
    # commit; IMMEDIATE takes the write lock at BEGIN so concurrent writers wait on the
    # busy timeout instead of failing with "database is locked" mid-transaction.
    # Each connection keeps a page cache of up to DATABASE_SQLITE_CACHE_KIB, and a process
    # keeps one connection per executor and node thread plus its idle ones: with SQLite's
    # default (2,000 KiB) 40 such connections held 83 MiB (256 KiB: 13 MiB), which is how the
    # served process grew across benchmark passes. The file stays in the OS's cache anyway.
    DATABASE_SQLITE_CACHE_KIB = env.int("DATABASE_SQLITE_CACHE_KIB", default=512)
    _db.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            f"PRAGMA cache_size=-{DATABASE_SQLITE_CACHE_KIB};",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Threaded tests (engine, live server) need a file database, not shared-cache memory;
    # it sits beside the database file as .test-<name>.
    _db_path = Path(_db["NAME"])
    _db["TEST"] = {"NAME": str(_db_path.with_name(f".test-{_db_path.name}"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL", default="")
# Two layers by alias: "default" (channels-redis's queueing layer, Channels' default alias),
# "events" broadcasts to sockets over Redis pub/sub (measured here: group_send→receive p50
# 0.15 ms / p99 0.28 ms, against 0.96 / 2.0 ms for the queueing layer; a lost broadcast is
# backfilled from the database by seq). Executions do not travel here: see Celery below.
# Key prefix in Redis: deployments (or test runs) sharing one Redis keep apart with their own.
CHANNEL_LAYER_PREFIX = env("CHANNEL_LAYER_PREFIX", default="asgi")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": CHANNEL_LAYER_PREFIX,
            },
        },
        "events": {
            # channels-redis's pub/sub layer, decoding a message once for all its sockets.
            "BACKEND": "canvas.core.layers.SharedRedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX},
        },
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
        # Channels' in-memory layer, copying a group message once for all its sockets.
        "events": {"BACKEND": "canvas.core.layers.SharedInMemoryChannelLayer"},
    }
# Sockets and the publisher use this alias.
EVENTS_CHANNEL_LAYER = "events"

# The /ws/ socket (docs/realtime.md).
REALTIME_MAX_MESSAGE_BYTES = env.int("REALTIME_MAX_MESSAGE_BYTES", default=64 * 1024)
REALTIME_MAX_SUBSCRIPTIONS = env.int("REALTIME_MAX_SUBSCRIPTIONS", default=100)
REALTIME_RATE_LIMIT_PER_SECOND = env.float("REALTIME_RATE_LIMIT_PER_SECOND", default=20.0)
REALTIME_RATE_LIMIT_BURST = env.int("REALTIME_RATE_LIMIT_BURST", default=40)
# Refused messages (rate, size) a socket may send before it is closed with 4429.
REALTIME_ABUSE_LIMIT = env.int("REALTIME_ABUSE_LIMIT", default=20)
REALTIME_HEARTBEAT_SECONDS = env.float("REALTIME_HEARTBEAT_SECONDS", default=20.0)
# How often each serving process reads the stored tails of the unfinished runs its sockets
# follow (one query for all): an event whose publisher died reaches them within ~2 intervals.
REALTIME_TAIL_CHECK_SECONDS = env.float("REALTIME_TAIL_CHECK_SECONDS", default=0.5)
# Runs' replays kept per process, read and encoded once for every subscriber
# (canvas/core/replays.py): at most this many bytes of encoded frames; 0 turns it off. The
# entries take about 6x that in memory with their decoded messages (bench/client.py
# --memory 10000: 4 MiB held ~26 MiB of RSS once full; 16 MiB broke the 1.5x RSS target).
REALTIME_REPLAY_CACHE_BYTES = env.int("REALTIME_REPLAY_CACHE_BYTES", default=4 * 1024 * 1024)

# --- Auth, i18n, static ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Brute force on the session and admin logins (and the token endpoint, which is throttled
# too): after LOGIN_FAILURE_LIMIT failures for one username from one address, that pair is
# refused for LOGIN_LOCKOUT_MINUTES (429 with Retry-After). Attempts are rows in the database,
# shared by every process; a success resets the count. `manage.py axes_reset` unlocks all.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# No log line per attempt or at start (commands print only their own output); the attempts
# are in the admin (Axes: access attempts, failures).
AXES_VERBOSE = False
# The client address as the throttles read it (NUM_PROXIES), not a forgeable header.
AXES_CLIENT_IP_CALLABLE = "canvas.core.throttles.client_address"
AXES_LOCKOUT_CALLABLE = "canvas.core.throttles.login_lockout_response"
# The pages (canvas/pages.py); the browsable API keeps its own /api-auth/login/.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/canvas/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files in production (after collectstatic); finders in DEBUG.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security (on by default outside DEBUG; each can be turned off for plain-HTTP rigs) ------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- REST framework and OpenAPI -------------------------------------------------------------

REST_FRAMEWORK = {
    # Token first: a request without credentials then answers 401 with
    # "WWW-Authenticate: Token" (DRF takes the header from the first class; with session
    # first it is a 403). The browsable API's session login works the same either way.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's, with its lookup in one plain statement (canvas.core.authentication).
        "canvas.core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # A document nested too deep for Python's decoder is a 400, not a RecursionError (500).
    "DEFAULT_PARSER_CLASSES": [
        "canvas.core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # drf-spectacular's, with every operation's error answers documented.
    "DEFAULT_SCHEMA_CLASS": "canvas.core.schema.CanvasAutoSchema",
    "EXCEPTION_HANDLER": "canvas.core.exceptions.exception_handler",
    # Throttles are chosen per view (canvas.core.throttles); their rates: THROTTLE_RATES below.
    # Proxies in front of the server: the client address is the one the last of them saw.
    # 0 reads REMOTE_ADDR and ignores X-Forwarded-For (which a client could forge).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Canvas API",
    "DESCRIPTION": "Graphs, workflow executions, chat and provider keys.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" with its own choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ExecutionStatusEnum": "workflows.models.ExecutionStatus",
        "NodeRunStatusEnum": "workflows.models.NodeRunStatus",
        "MessageStatusEnum": "chat.models.Message.Status",
    },
}

# --- Throttling and the cache that counts -------------------------------------------------

# "auth=10/min,start=600/min,chat=60/min,keys=60/min" (the default): requests per scope (a
# scope left out keeps its default, "scope=off" turns it off); an empty value turns them all
# off. See canvas/core/throttles.py.
try:
    THROTTLE_RATES = parse_rates(env("THROTTLE_RATES", default=DEFAULT_RATES))
except ValueError as exc:
    raise ImproperlyConfigured(f"THROTTLE_RATES: {exc}") from None
# Throttle counters (and anything else cached) live here: Redis when REDIS_URL is set, so every
# process shares them; per process otherwise.
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", default="canvas")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
    }
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_PREFIX": CACHE_KEY_PREFIX,
    }
}

# --- Graphs ---------------------------------------------------------------------------------

GRAPH_MAX_NODES = env.int("GRAPH_MAX_NODES", default=2000)
GRAPH_MAX_EDGES = env.int("GRAPH_MAX_EDGES", default=5000)
GRAPH_MAX_CONFIG_BYTES = env.int("GRAPH_MAX_CONFIG_BYTES", default=64 * 1024)
# A whole-document PUT of GRAPH_MAX_NODES nodes is several MB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=16 * 1024 * 1024)

# --- Integrations ---------------------------------------------------------------------------

OLLAMA_BASE_URL = env("OLLAMA_BASE_URL", default="http://127.0.0.1:11434")
GROQ_BASE_URL = env("GROQ_BASE_URL", default="https://api.groq.com/openai/v1")
GROQ_API_KEY = env("GROQ_API_KEY", default="")
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=5.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=300.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=2)
HTTP_RETRY_AFTER_CAP = env.float("HTTP_RETRY_AFTER_CAP", default=60.0)
# Hosts or CIDR networks the HTTP node may reach although they are private (internal targets).
HTTP_ALLOWED_PRIVATE_TARGETS = env.list("HTTP_ALLOWED_PRIVATE_TARGETS", default=[])

# --- Workflows ------------------------------------------------------------------------------

# "inline": a thread pool in the serving process; "celery": `celery -A canvas worker` processes.
WORKFLOW_EXECUTOR = env("WORKFLOW_EXECUTOR", default="inline")
# Executions running at once in one process (the inline pool, or one Celery worker).
WORKFLOW_MAX_CONCURRENT_EXECUTIONS = env.int("WORKFLOW_MAX_CONCURRENT_EXECUTIONS", default=8)
# Ready nodes of one execution running at once; slow nodes (llm, http) share a per-process
# pool of WORKFLOW_NODE_THREADS threads.
WORKFLOW_MAX_PARALLEL_NODES = env.int("WORKFLOW_MAX_PARALLEL_NODES", default=4)
WORKFLOW_NODE_THREADS = env.int("WORKFLOW_NODE_THREADS", default=16)
# Seconds; a node's config may lower its own timeout (http: timeout_s).
WORKFLOW_NODE_TIMEOUT = env.float("WORKFLOW_NODE_TIMEOUT", default=300.0)
WORKFLOW_EXECUTION_TIMEOUT = env.float("WORKFLOW_EXECUTION_TIMEOUT", default=3600.0)
# A running execution writes a heartbeat this often; one older than WORKFLOW_STALE_AFTER is
# taken over by the recovery sweep, which every worker runs at start and every
# WORKFLOW_RECOVERY_INTERVAL seconds.
WORKFLOW_HEARTBEAT_INTERVAL = env.float("WORKFLOW_HEARTBEAT_INTERVAL", default=2.0)
WORKFLOW_STALE_AFTER = env.float("WORKFLOW_STALE_AFTER", default=10.0)
WORKFLOW_RECOVERY_INTERVAL = env.float("WORKFLOW_RECOVERY_INTERVAL", default=5.0)
# How often a process running executions or chat replies reads their cancel flags, set by a
# cancel another process handled (seconds; integrations.cancellation). A cancel acts within two.
CANCEL_POLL_SECONDS = env.float("CANCEL_POLL_SECONDS", default=0.25)
# "auto": the recovery sweep runs where executions run (inline: daphne/runserver; celery: the
# workers); "1"/"0" force it on or off.
WORKFLOW_BACKGROUND = env("WORKFLOW_BACKGROUND", default="auto")
# Output cache of deterministic nodes: entries live this many seconds, at most this many rows.
WORKFLOW_CACHE_TTL = env.float("WORKFLOW_CACHE_TTL", default=7 * 24 * 3600.0)
WORKFLOW_CACHE_MAX_ENTRIES = env.int("WORKFLOW_CACHE_MAX_ENTRIES", default=10000)
# A node's outputs (and an LLM text) larger than this, as JSON, fail the node.
WORKFLOW_MAX_OUTPUT_BYTES = env.int("WORKFLOW_MAX_OUTPUT_BYTES", default=1024 * 1024)
# node.token messages are coalesced so that at most one leaves per node every this many ms.
WORKFLOW_TOKEN_COALESCE_MS = env.int("WORKFLOW_TOKEN_COALESCE_MS", default=20)

# --- Idempotency-Key (canvas/core/idempotency.py) ------------------------------------------

# A key answers the same request again for this long (seconds).
IDEMPOTENCY_KEY_TTL = env.int("IDEMPOTENCY_KEY_TTL", default=24 * 3600)

# --- Celery (WORKFLOW_EXECUTOR=celery; canvas/celery.py, docs/deploy.md) ---------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
if WORKFLOW_EXECUTOR == "celery" and not CELERY_BROKER_URL:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("WORKFLOW_EXECUTOR=celery needs CELERY_BROKER_URL (or REDIS_URL).")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is a wake-up; its outcome is the execution row: no result backend.
CELERY_TASK_IGNORE_RESULT = True
# Acknowledged when it ends, so a worker that dies holding it does not lose it; one message
# reserved per free slot, so a busy worker does not hoard runs that an idle one could take.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Threads, not prefork: measured in docs/deploy.md (the engine already runs its nodes in threads).
CELERY_WORKER_POOL = env("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int(
    "CELERY_WORKER_CONCURRENCY", default=WORKFLOW_MAX_CONCURRENT_EXECUTIONS
)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis gives an unacknowledged task to another worker after this long: longer than the
    # longest allowed run, or a long run would be delivered twice (harmless, the row is
    # claimed, but wasted). A dead worker's run is taken over by the heartbeat sweep long before.
    "visibility_timeout": int(WORKFLOW_EXECUTION_TIMEOUT) + 600,
    "socket_connect_timeout": 5,
}
# Broker connection lost: reconnect, forever, and keep running tasks going meanwhile.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# A start request while the broker is down gives up after about a second; its run stays
# queued and the recovery sweep sends it again.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.25,
    "interval_max": 0.5,
}
# No remote control, task events, gossip, mingle or worker heartbeat (the last three forced off
# in canvas/celery.py): their pub/sub channels crash the worker in a Redis outage (kombu
# issue 582). Flower needs events and remote control: see docs/deploy.md.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False
# Django's LOGGING stays in charge of the worker's log.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Chat ---------------------------------------------------------------------------------

# A message's content and a conversation's system prompt, in characters.
CHAT_MAX_CONTENT_CHARS = env.int("CHAT_MAX_CONTENT_CHARS", default=32_000)
CHAT_MAX_SYSTEM_PROMPT_CHARS = env.int("CHAT_MAX_SYSTEM_PROMPT_CHARS", default=32_000)
# The history sent with each call, in characters (system prompt included; there is no
# tokenizer for every model, and ~4 characters a token is the usual rule): the oldest messages
# go first, a message is never split, the new user message always goes.
CHAT_CONTEXT_MAX_CHARS = env.int("CHAT_CONTEXT_MAX_CHARS", default=24_000)
# Messages per page of GET /api/conversations/{id}/messages/ (?page_size= up to the max).
CHAT_MESSAGES_PAGE_SIZE = env.int("CHAT_MESSAGES_PAGE_SIZE", default=50)
CHAT_MESSAGES_MAX_PAGE_SIZE = env.int("CHAT_MESSAGES_MAX_PAGE_SIZE", default=200)
# Socket replies stream in this many threads per process (never the consumer's DB thread).
CHAT_STREAM_THREADS = env.int("CHAT_STREAM_THREADS", default=8)

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
