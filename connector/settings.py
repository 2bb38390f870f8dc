"""The node's settings: read once, from CONNECTOR_* environment variables and an optional TOML file.

This module is the only reader of the environment. Everything else receives the frozen `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "CONNECTOR_"


class SettingsError(Exception):
    """A setting is invalid; the message names it in one line."""


class Settings(BaseSettings):
    """Every setting of a node. Each field is documented in README.md's settings table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    participant_id: str | None = Field(
        default=None,
        description="The node's participant id in the dataspace (default: its DID).",
    )
    did: str | None = Field(default=None, description="The node's DID (default: the did:web of CONNECTOR_PUBLIC_URL).")
    key_file: Path | None = Field(
        default=None,
        description="PEM or JWK file with the node's private key (default: created as node-key.jwk in the data dir).",
    )
    key_kind: Literal["Ed25519", "P-256"] = Field(default="Ed25519", description="Kind of key created on first start.")
    trusted_issuers: str = Field(
        default="",
        description="Credential issuers trusted, comma-separated: a DID (trusted for every type) or TYPE=DID.",
    )
    requested_credentials: str = Field(
        default="MembershipCredential,DataExchangeGovernanceCredential,BpnCredential,RoleCredential,AccessLevelCredential",
        description="Credential types asked of every peer's credential service, comma-separated.",
    )
    credential_scope_alias: str = Field(
        default="org.eclipse.tractusx.vc.type",
        description="Alias of the DCP scopes asking for credentials (<alias>:<type>:read): Tractus-X's, or "
        "org.eclipse.dspace.dcp.vc.type (EDC 0.17+ wallets) or org.eclipse.edc.vc.type (EDC up to 0.16).",
    )
    business_partner_groups: str = Field(
        default="",
        description="Business partner groups for cx-policy:BusinessPartnerGroup, comma-separated BPN=group|group.",
    )
    claims_cache_seconds: float = Field(
        default=300.0, ge=0, le=86400, description="Seconds a peer's verified credential claims are reused."
    )
    read_replay_cache: Literal["memory", "database"] = Field(
        default="memory",
        description="Where the token ids of DSP read requests (catalog, dataset, process state) are remembered "
        "against replay: this process's memory, or the database as for state-changing requests.",
    )
    bdrs_url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL of the dataspace's BPN-DID resolution service directory API (BDRS, CX-0167), e.g. "
        "https://bdrs.example.net/api/directory; BPNs are resolved through <url>/bpn-directory.",
    )
    bdrs_cache_seconds: float = Field(
        default=900.0,
        ge=0,
        le=86400,
        description="Seconds the BDRS directory is kept before it is fetched again (Tractus-X EDC: 900).",
    )
    bpn_directory_file: Path | None = Field(
        default=None,
        description='JSON file of BPN to DID ({"BPNL...": "did:web:..."}), read before the BDRS; for local '
        "dataspaces and tests.",
    )
    bpn: str | None = Field(
        default=None,
        description="The node's own BPNL: owner of its Digital Twin Registry (sees every specific asset id) and the "
        "manufacturerId of its shells (default: CONNECTOR_PARTICIPANT_ID when it is a BPNL).",
        pattern=r"^BPNL[0-9A-Z]{12}$",
    )
    registry_readers: str = Field(
        default="PUBLIC_READABLE",
        description="Who may see the specific asset ids of the registry's shells, comma-separated: BPNLs and/or "
        "PUBLIC_READABLE (everyone, for the names in CONNECTOR_REGISTRY_PUBLIC_NAMES), as Tractus-X's DTR reads them.",
    )
    registry_public_names: str = Field(
        default="manufacturerPartId,partInstanceId,digitalTwinType",
        description="Specific asset id names PUBLIC_READABLE makes visible to everyone, comma-separated.",
    )
    registry_settle_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="A createdAfter listing of the registry shows shells created at least this long ago, so a "
        "transaction that commits late is never behind a poller's last createdAfter.",
    )
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL peers use to reach the protocol surface (default: http://localhost:<protocol port>).",
    )
    protocol_host: str = Field(
        default="127.0.0.1",
        description="Address the protocol surface binds to (loopback by default; 0.0.0.0 or an interface's address "
        "to let partners reach it, as the container image sets).",
    )
    protocol_port: int = Field(default=8282, ge=0, le=65535, description="Port of the protocol surface.")
    management_host: str = Field(default="127.0.0.1", description="Address the management surface binds to.")
    management_port: int = Field(default=8181, ge=0, le=65535, description="Port of the management surface.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Management API key, sent by clients as X-Api-Key. Unset: management binds to loopback only.",
    )
    data_dir: Path = Field(default=Path("./data"), description="Directory for the node's own files.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite+aiosqlite:///... or postgresql+asyncpg://...).",
    )
    database_auto_migrate: bool | None = Field(
        default=None,
        description="Run migrations at start (default: yes for SQLite, no for PostgreSQL).",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200, description="Connections per database pool.")
    database_connect_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds the database may take to accept a connection; then the node or command stops, naming it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")
    log_flush_seconds: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="Longest a serving node keeps an INFO or DEBUG log line before writing it to stderr (lines are "
        "written in batches, not one write each); warnings and errors are written at once; 0 writes each line at once.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=1_073_741_824,
        description="Largest request body accepted, in bytes; also the largest passport record an import reads.",
    )
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=200,
        description=(
            "Deepest JSON nesting accepted in a body or an imported passport record (at most 200: stored "
            "passports wrap their source data a few levels deeper, and JSON is written at most 254 deep)."
        ),
    )
    import_workers: int = Field(
        default=2,
        ge=0,
        le=64,
        description=(
            "Worker processes that parse, check and map passports for `connector passports import` while the "
            "command stores them (0: all in the command's own process; a source under 16 MiB never uses one)."
        ),
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=8190,
        le=65_536,
        description=(
            "Longest request line or header field accepted on either surface, in bytes (a self-issued token that "
            "embeds a presentation can pass 8 KiB); longer ones get 400 with the surface's error body."
        ),
    )
    catalog_title: str | None = Field(
        default=None,
        description="Title of the public DCAT-AP catalog (default: Battery passports of <participant id>).",
    )
    catalog_description: str | None = Field(default=None, description="Description of the public DCAT-AP catalog.")
    publisher_name: str | None = Field(
        default=None, description="Name of the organisation publishing the catalog (default: the participant id)."
    )
    peer_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a peer may take to answer one request of this node (for a push: to take each chunk).",
    )
    peer_max_body_bytes: int = Field(
        default=10_485_760, ge=1024, le=1_073_741_824, description="Largest answer accepted from a peer, in bytes."
    )
    allow_local_peers: bool = Field(
        default=False,
        description="Allow contacting loopback and private addresses (local development and tests only).",
    )
    negotiation_approval: Literal["automatic", "manual"] = Field(
        default="automatic",
        description="Agree to requests that pass the policies at once, or hold them for the operator's approval.",
    )
    outbox_max_attempts: int = Field(
        default=7, ge=1, le=100, description="Attempts to deliver a message to a peer before the process terminates."
    )
    outbox_retry_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="Delay before the first retry of a message; it doubles each time."
    )
    outbox_lease_seconds: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="Seconds a node holds a message it sends before another may take it over (renewed while sending).",
    )
    peer_deadline_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86_400,
        description="Seconds a process waits for the peer's next move before it terminates (0: for ever).",
    )
    access_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a call that needs a partner's data (a passport lookup) waits for a negotiation to be "
        "finalized or a transfer to start; the process goes on after that, and the next call waits for it.",
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, le=600, description="Seconds to drain in-flight requests on SIGTERM."
    )
    sync_poll_seconds: float = Field(
        default=5.0,
        ge=1,
        le=3600,
        description="Seconds between the sync scheduler's looks at the jobs table (an idle node's only query).",
    )
    sync_page_size: int = Field(
        default=500, ge=1, le=1000, description="Passports a sync run asks a partner's change feed for per page."
    )
    sync_retry_attempts: int = Field(
        default=4, ge=1, le=20, description="Attempts a sync run makes at each call to a partner before it fails."
    )
    sync_retry_seconds: float = Field(
        default=2.0, ge=0, le=600, description="First backoff of a sync run's retries (doubled for each next one)."
    )
    sync_lease_seconds: float = Field(
        default=60.0,
        ge=1,
        le=86_400,
        description="Seconds a node holds a sync job it runs (renewed per page); a crashed run holds it this long.",
    )
    policy_monitor_seconds: float = Field(
        default=30.0, gt=0, le=86_400, description="Interval of the policy monitor over running transfers."
    )
    access_log_retention_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Days the data-plane access log keeps each entry (0: for ever); older ones are pruned.",
    )
    prune_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=604_800,
        description="Interval of the pruning of the access log and of expired token ids (also run at start).",
    )
    token_lifetime_seconds: int = Field(
        default=300, ge=10, le=3600, description="Lifetime of data-plane access tokens (refreshable)."
    )
    federation_crawl_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=604_800,
        description="Period of the federated catalog's crawls of every participant (0: no scheduled crawls, "
        "only those asked for); one crawl per participant and period across replicas.",
    )
    federation_crawl_concurrency: int = Field(
        default=8, ge=1, le=256, description="Participants crawled at the same time, at most."
    )
    federation_crawl_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Seconds one participant's crawl (every catalog page and its public passports) may take.",
    )
    federation_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Datasets asked for per catalog page when crawling."
    )
    federation_max_datasets: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Datasets one participant's catalog may hold; a larger one fails its crawl.",
    )
    federation_max_passports: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Public passport views read from one participant per crawl; more fail its crawl (0: none read).",
    )
    federation_retention_seconds: float = Field(
        default=604_800.0,
        gt=0,
        le=31_536_000,
        description="Seconds a participant's last good entry is kept (marked stale) while its crawls fail.",
    )
    federation_participants_file: Path | None = Field(
        default=None,
        description="A file naming participants to crawl, one DID, BPN or DSP address per line (# comments); "
        "read at start, added to those of the management API.",
    )
    insights_min_batteries: int = Field(
        default=10, ge=1, le=1_000_000, description="Insights shows no figure for a group of fewer batteries."
    )
    insights_min_operators: int = Field(
        default=3, ge=1, le=10_000, description="Insights shows no figure for a group of fewer operators."
    )
    insights_cache_seconds: float = Field(
        default=60.0, ge=0, le=86_400, description="Seconds the Insights figures are reused before a recomputation."
    )
    tck_mode: bool = Field(
        default=False,
        description="DSP conformance test mode (TCK seed data, scripted reactions, triggers). Not for production.",
    )
    tck_authorization: SecretStr | None = Field(
        default=None,
        description="In test mode, the Authorization header value the TCK sends; it authenticates TCK_PARTICIPANT.",
    )
    management_hostnames: str = Field(
        default="",
        description="Host names the management surface answers to besides loopback ones, comma-separated; "
        "a request naming another Host gets 421 (this stops DNS rebinding).",
    )
    management_cors_origins: str = Field(
        default="",
        description="Web origins (scheme://host[:port]) whose pages may call the management API, comma-separated; "
        "empty: no CORS, and a request with any other Origin gets 403.",
    )

    @field_validator("registry_readers")
    @classmethod
    def _readers_shape(cls, value: str) -> str:
        for item in _items(value):
            if item != "PUBLIC_READABLE" and not re.fullmatch(r"BPNL[0-9A-Z]{12}", item):
                raise ValueError(f"{item!r} is neither a BPNL nor PUBLIC_READABLE")
        return value

    @property
    def effective_bpn(self) -> str | None:
        """Return the node's BPN: CONNECTOR_BPN, else the participant id when it is a BPNL."""
        if self.bpn:
            return self.bpn
        pid = self.participant_id or ""
        return pid if re.fullmatch(r"BPNL[0-9A-Z]{12}", pid) else None

    @field_validator("participant_id")
    @classmethod
    def _participant_id_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("did")
    @classmethod
    def _did_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("did:web:"):
            raise ValueError("must be a did:web DID (did:web:host%3Aport:path)")
        return value

    @field_validator("trusted_issuers")
    @classmethod
    def _trusted_issuers_shape(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item and not item.rpartition("=")[2].strip().startswith("did:"):
                raise ValueError(f"{item!r} is not a DID or TYPE=DID")
        return value

    @field_validator("credential_scope_alias")
    @classmethod
    def _scope_alias_known(cls, value: str) -> str:
        aliases = ("org.eclipse.tractusx.vc.type", "org.eclipse.dspace.dcp.vc.type", "org.eclipse.edc.vc.type")
        if value not in aliases:
            raise ValueError(f"{value!r} is not one of {', '.join(aliases)}")
        return value

    @field_validator("business_partner_groups")
    @classmethod
    def _groups_shape(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            bpn, sep, _ = item.partition("=")
            if item and (not sep or not re.fullmatch(r"BPNL[0-9A-Z]{12}", bpn.strip())):
                raise ValueError(f"{item!r} is not BPN=group|group (a BPNL and its groups)")
        return value

    @field_validator("requested_credentials")
    @classmethod
    def _credential_types_shape(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item and not item.isidentifier():
                raise ValueError(f"{item!r} is not a credential type name")
        return value

    @field_validator("protocol_host", "management_host")
    @classmethod
    def _host_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("management_hostnames")
    @classmethod
    def _hostnames_shape(cls, value: str) -> str:
        for item in _items(value):
            host_name(item)
        return value

    @field_validator("management_cors_origins")
    @classmethod
    def _origins_shape(cls, value: str) -> str:
        for item in _items(value):
            web_origin(item)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_supported(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split(":", 1)[0]
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg", "sqlite", "postgresql", "postgres"}:
            raise ValueError(
                f"unsupported scheme {scheme!r}; use sqlite+aiosqlite:///path or postgresql+asyncpg://host/db"
            )
        return value

    @model_validator(mode="after")
    def _management_needs_key_off_loopback(self) -> Settings:
        if self.api_key is None and not _is_loopback(self.management_host):
            raise ValueError(
                "management_host: binding the management API to "
                f"{self.management_host!r} needs CONNECTOR_API_KEY; without a key it binds to loopback only"
            )
        if self.api_key is not None and len(self.api_key.get_secret_value()) < 16:
            raise ValueError("api_key: must be at least 16 characters")
        if self.tck_mode and (self.tck_authorization is None or len(self.tck_authorization.get_secret_value()) < 8):
            raise ValueError(
                "tck_authorization: the conformance test mode needs CONNECTOR_TCK_AUTHORIZATION "
                "(at least 8 characters), the value the TCK sends as its Authorization header"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which arrives as init arguments.
        return (env_settings, init_settings)

    # Derived values: computed from the settings, never stored twice.

    @property
    def effective_public_url(self) -> str:
        """Return the protocol base URL peers use, without a trailing slash."""
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://localhost:{self.protocol_port}"

    @property
    def effective_did(self) -> str:
        """Return the node's DID, by default the did:web of the public URL."""
        return self.did or did_web_from_url(self.effective_public_url)

    @property
    def effective_participant_id(self) -> str:
        """Return the participant id, by default the node's DID."""
        return self.participant_id or self.effective_did

    @property
    def issuer_dir(self) -> Path:
        """Return the directory of the node's issuer, when `connector issuer init` made it one."""
        return self.data_dir / "issuer"

    @property
    def effective_database_url(self) -> str:
        """Return the database URL with an async driver."""
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'connector.db').as_posix()}"
        if url.startswith("sqlite:"):
            url = "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
        elif url.startswith(("postgresql:", "postgres:")):
            url = "postgresql+asyncpg:" + url.split(":", 1)[1]
        return url

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the node runs on its embedded SQLite database."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def auto_migrate(self) -> bool:
        """Tell whether migrations run at start."""
        return self.is_sqlite if self.database_auto_migrate is None else self.database_auto_migrate

    @property
    def dsp_base_url(self) -> str:
        """Return the versioned DSP 2025-1 base URL of this node."""
        return f"{self.effective_public_url}/api/dsp/2025-1"

    @property
    def management_hostname_list(self) -> tuple[str, ...]:
        """Return the configured management host names, lower case (IPv6 addresses in brackets)."""
        return tuple(host_name(item) for item in _items(self.management_hostnames))

    @property
    def management_cors_origin_list(self) -> tuple[str, ...]:
        """Return the configured CORS origins as browsers send them (lower case, no default port)."""
        return tuple(web_origin(item) for item in _items(self.management_cors_origins))


def did_web_from_url(url: str) -> str:
    """Return the did:web identifier for a base URL (port percent-encoded, path segments joined by ':')."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    segments = [quote(host, safe="")]
    segments += [quote(s, safe="") for s in parts.path.split("/") if s]
    return "did:web:" + ":".join(segments)


_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def host_name(value: str) -> str:
    """Return a host name or IP address as Host names it (lower case, IPv6 in brackets); raise ValueError if not one."""
    text = value.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        if _DNS_NAME.match(text) and not text.replace(".", "").isdigit():
            return text
        raise ValueError(f"{value!r} is not a host name or IP address (no scheme, port, path or wildcard)") from None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def web_origin(value: str) -> str:
    """Return a web origin as browsers send it in Origin (scheme://host[:port], lower case), or raise ValueError."""
    text = value.strip()
    if text == "*":
        raise ValueError("'*' is not allowed: list each origin (any page at all could then read EDR tokens)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not a web origin (scheme://host[:port])") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{value!r} is not a web origin: it needs http:// or https:// and a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} is not a web origin: no path, query or user, only scheme://host[:port]")
    host = host_name(parts.hostname)
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def setting_names() -> list[str]:
    """Return every environment variable name the node reads."""
    return [ENV_PREFIX + name.upper() for name in Settings.model_fields]


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once; raise SettingsError with one line naming the bad setting."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"config file {config_file}: cannot be read ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file}: not valid TOML ({exc})") from None
        unknown = sorted(set(file_values) - set(Settings.model_fields))
        if unknown:
            raise SettingsError(
                f"config file {config_file}: unknown setting {unknown[0]!r} "
                f"(known: {', '.join(sorted(Settings.model_fields))})"
            )
    _reject_unknown_env(os.environ if environ is None else environ)
    try:
        if environ is None:
            return Settings(**file_values)
        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
                del os.environ[key]
            os.environ.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})
            return Settings(**file_values)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def _reject_unknown_env(environ: Mapping[str, str]) -> None:
    known = set(setting_names())
    # Test-only variables share the prefix on purpose; they are not node settings.
    unknown = sorted(
        k for k in environ if k.startswith(ENV_PREFIX) and k not in known and not k.startswith("CONNECTOR_TEST_")
    )
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = [str(p) for p in error.get("loc", ())]
    message = str(error.get("msg", "invalid"))
    if not loc and ":" in message:
        # Model-level checks name their field at the start of the message.
        field, _, message = message.removeprefix("Value error, ").partition(": ")
        loc = [field]
    name = ENV_PREFIX + loc[0].upper() if loc else "settings"
    given = error.get("input")
    shown = "" if "api_key" in name.lower() or isinstance(given, dict) else f" (got {given!r})"
    return f"{name}: {message.removeprefix('Value error, ')}{shown}"
