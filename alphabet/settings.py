"""Every setting is an ALPHABET_* environment variable with a safe development default; this is
the only module that reads the environment."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# A reminder's lead time, at most a year (see Settings.from_env).
MAX_REMINDER_MINUTES = 366 * 24 * 60


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class Postgres:
    """ALPHABET_EVENT_STORE=postgresql://user:password@host:port/dbname[?schema=name]: the event
    store and the state database, both in this database (and schema), shared by instances."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    schema: str = "public"

    @classmethod
    def from_url(cls, url: str) -> Postgres:
        parts = urlsplit(url)
        problem = "ALPHABET_EVENT_STORE must be postgresql://user[:password]@host[:port]/dbname"
        if parts.scheme not in ("postgresql", "postgres"):
            raise SettingsError(f"{problem}, not {url!r}")
        try:
            port = parts.port or 5432
        except ValueError:
            raise SettingsError(f"{problem}; its port is not a number") from None
        dbname = unquote(parts.path.lstrip("/"))
        if not (parts.hostname and parts.username and dbname):
            raise SettingsError(f"{problem} (host, user and database name are required)")
        schema = parse_qs(parts.query).get("schema", ["public"])[0]
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise SettingsError("the schema in ALPHABET_EVENT_STORE (?schema=) must be lower-case "
                                f"letters, digits and _, not {schema!r}")
        return cls(parts.hostname, port, unquote(parts.username),
                   unquote(parts.password or ""), dbname, schema)

    @property
    def conninfo(self) -> str:
        """The libpq connection string; state-database sessions work in the schema."""
        fields = {"host": self.host, "port": str(self.port), "user": self.user,
                  "password": self.password, "dbname": self.dbname,
                  "application_name": "alphabet", "options": f"-c search_path={self.schema}"}
        return " ".join(f"{key}='{quote(value)}'" for key, value in fields.items() if value)

    def eventsourcing_env(self) -> dict[str, str]:
        """Each save one statement (projections.postgres.recorder says why)."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "projections.postgres.recorder:LockingRecorder",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
        }


def address(name: str, value: str) -> tuple[str, int]:
    """host:port, e.g. the worker's health endpoint."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"ALPHABET_{name} must be host:port (e.g. 127.0.0.1:6066), "
                            f"not {value!r}")
    return host.strip("[]"), int(port)


def quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# A host name as DNS has it (RFC 1123 labels): what the right of a Message-ID should be.
LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
DOMAIN_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(\.{LABEL})*")


def mail_from(value: str) -> str:
    address = parseaddr(value)[1]
    domain = address.rpartition("@")[2]
    if "@" not in address or not DOMAIN_NAME.fullmatch(domain):
        raise SettingsError("ALPHABET_MAIL_FROM must be an email address, with a display name "
                            f"if you like (Alphabet Events <events@example.com>), not {value!r}")
    return value


def public_url(value: str) -> str:
    """The address clients reach the server at, which links given out (a calendar feed's)
    begin with: scheme and host, and a path prefix if a proxy serves it under one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise SettingsError("ALPHABET_PUBLIC_URL must be an http(s) address such as "
                            f"https://events.example.com, not {value!r}")
    return value.rstrip("/")


def mail_domain(value: str) -> str:
    if not DOMAIN_NAME.fullmatch(value):
        raise SettingsError("ALPHABET_MAIL_DOMAIN must be a domain name (mail.example.com), "
                            f"not {value!r}")
    return value.lower()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    secret_key: str | None = None
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    signin_failures_per_account_and_address: int = 5
    signin_failures_per_account: int = 100
    signin_failures_per_address: int = 50
    signin_window_seconds: int = 900
    trusted_proxies: frozenset[str] = frozenset()
    cors_origins: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    redis_url: str | None = None
    redis_namespace: str = "alphabet"
    smtp_url: str | None = None
    mail_from: str = "Alphabet Events <events@localhost>"
    mail_domain: str | None = None
    reminder_minutes: int = 30
    # The most log positions one GET /api/events/changes reads (a page ends early, past them).
    sync_read_limit: int = 5000
    kafka_url: str | None = None
    kafka_partitions: int = 8
    kafka_group: str = "alphabet-events"
    kafka_session_seconds: int = 6
    worker_health: tuple[str, int] = ("127.0.0.1", 6066)
    postgres: Postgres | None = None
    # What a scraper of /metrics must present as a bearer token; unset, loopback clients only.
    metrics_token: str | None = None
    # Usernames (case-folded, as usernames are unique) of the accounts that are operators by
    # configuration, beside those granted by `alphabet operator grant`.
    operators: frozenset[str] = frozenset()
    # Where clients reach the server (links given out begin with it); unset, the address each
    # request was sent to (its Host).
    public_url: str | None = None
    # The address `alphabet serve` listens at (its --host and --port; not from the
    # environment): what links made outside any request (an email's) begin with when
    # ALPHABET_PUBLIC_URL is unset.
    served_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str, default: str) -> str:
            return env.get(f"ALPHABET_{name}", "").strip() or default

        def number(name: str, default: int, maximum: int | None = None) -> int:
            raw = text(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(
                    f"ALPHABET_{name} must be a whole number, not {raw!r}"
                ) from None
            if value < 1:
                raise SettingsError(f"ALPHABET_{name} must be at least 1, not {value}")
            if maximum is not None and value > maximum:
                raise SettingsError(f"ALPHABET_{name} must be at most {maximum}, not {value}")
            return value

        def choice(name: str, allowed: tuple[str, ...]) -> str:
            value = text(name, allowed[0]).lower()
            if value not in allowed:
                raise SettingsError(f"ALPHABET_{name} must be one of {', '.join(allowed)}, "
                                    f"not {value!r}")
            return value

        return cls(
            data_dir=Path(text("DATA_DIR", "data")),
            secret_key=text("SECRET_KEY", "") or None,
            access_token_minutes=number("ACCESS_TOKEN_MINUTES", 15),
            refresh_token_days=number("REFRESH_TOKEN_DAYS", 7),
            signin_failures_per_account_and_address=number(
                "SIGNIN_FAILURES_PER_ACCOUNT_AND_ADDRESS", 5),
            signin_failures_per_account=number("SIGNIN_FAILURES_PER_ACCOUNT", 100),
            signin_failures_per_address=number("SIGNIN_FAILURES_PER_ADDRESS", 50),
            signin_window_seconds=number("SIGNIN_WINDOW_SECONDS", 900),
            trusted_proxies=frozenset(
                p.strip() for p in text("TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            cors_origins=text("CORS_ORIGINS", ""),
            log_level=text("LOG_LEVEL", "INFO").upper(),
            log_format=choice("LOG_FORMAT", ("json", "text")),
            redis_url=text("REDIS_URL", "") or None,
            redis_namespace=text("REDIS_NAMESPACE", "alphabet"),
            smtp_url=text("SMTP_URL", "") or None,
            mail_from=mail_from(text("MAIL_FROM", "Alphabet Events <events@localhost>")),
            mail_domain=mail_domain(domain) if (domain := text("MAIL_DOMAIN", "")) else None,
            # At most a year: the supported times (domain.events) leave centuries of room
            # before the first start for the reminder's offset, never a negative year.
            reminder_minutes=number("REMINDER_MINUTES", 30, maximum=MAX_REMINDER_MINUTES),
            sync_read_limit=number("SYNC_READ_LIMIT", 5000),
            kafka_url=text("KAFKA_URL", "") or None,
            kafka_partitions=number("KAFKA_PARTITIONS", 8),
            kafka_group=text("KAFKA_GROUP", "alphabet-events"),
            kafka_session_seconds=number("KAFKA_SESSION_SECONDS", 6),
            worker_health=address("WORKER_HEALTH", text("WORKER_HEALTH", "127.0.0.1:6066")),
            postgres=Postgres.from_url(store) if (store := text("EVENT_STORE", "")) else None,
            metrics_token=text("METRICS_TOKEN", "") or None,
            operators=frozenset(
                name.strip().casefold() for name in text("OPERATORS", "").split(",")
                if name.strip()
            ),
            public_url=public_url(url) if (url := text("PUBLIC_URL", "")) else None,
        )

    @property
    def message_domain(self) -> str:
        """The right-hand side of every Message-ID: ALPHABET_MAIL_DOMAIN, or else the domain of
        the From address, so that messages identify themselves as the sender's."""
        return self.mail_domain or parseaddr(self.mail_from)[1].rpartition("@")[2].lower()

    @property
    def link_base(self) -> str:
        """What links in emails begin with: ALPHABET_PUBLIC_URL, or the address served."""
        return self.public_url or self.served_url

    @property
    def event_store_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite"

    def prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def secret(self) -> str:
        """The signing key: ALPHABET_SECRET_KEY, or one generated once into the data dir with
        mode 0600 (the first process to start writes it; the others read it)."""
        if self.secret_key:
            return self.secret_key
        self.prepare_data_dir()
        path = self.data_dir / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
