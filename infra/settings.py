"""The one settings class of the platform.

Every value comes from the environment with the prefix ``ESPORTS_`` and ``__`` between a concern and
its field, e.g. ``ESPORTS_KAFKA__BOOTSTRAP_SERVERS`` or ``ESPORTS_POSTGRES__PORT``. Every field documents
its default; ``esports config`` prints the effective values. Libraries never read the environment on
their own: services build one :class:`Settings` in their composition root and pass values explicitly.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.net import parse_networks

REPO_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    """How clients reach Kafka and how the local broker is run."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated. Default: every local broker's client port.",
    )
    port: int = Field(9092, description="Port of the local broker's client listener (`esports infra up`).")
    controller_port: int = Field(9093, description="Port of the local KRaft controller listener.")
    brokers: int = Field(
        1,
        ge=1,
        le=9,
        description="Local brokers `esports infra up` runs: 1, or 3 for a cluster (node N listens on "
        "port + 100·(N-1)); with more than one, replication defaults to 3 (at most the brokers).",
    )
    version: str = Field(
        "4.4.0", description="org.apache.kafka:kafka_2.13 version resolved by infra/local/kafka/pom.xml."
    )
    heap: str = Field("512m", description="Local broker JVM heap (-Xms/-Xmx). 2-4g on a dedicated machine.")
    default_partitions: int = Field(
        6, description="Partitions for catalogue topics that do not name their own count (scale-out unit)."
    )
    replication_factor: int | None = Field(
        None,
        description="Replication factor of created topics (3 in production). Default: 1 with one local "
        "broker, min(3, brokers) with a local cluster.",
    )
    min_insync_replicas: int | None = Field(
        None,
        description="min.insync.replicas of created topics: replicas that must have a write before acks=all "
        "answers. Default: replication factor - 1, at least 1 (2 with replication 3).",
    )

    @property
    def replication(self) -> int:
        """``replication_factor``, or its default for the local ``brokers``."""
        if self.replication_factor is not None:
            return self.replication_factor
        return min(3, self.brokers)

    @property
    def min_insync(self) -> int:
        """``min_insync_replicas``, or its default for ``replication``."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return max(1, self.replication - 1)

    def node_ports(self, node: int) -> tuple[int, int]:
        """(client port, controller port) of local broker `node` (1-based)."""
        return self.port + 100 * (node - 1), self.controller_port + 100 * (node - 1)

    @model_validator(mode="after")
    def _local_bootstrap(self) -> KafkaSettings:
        # Unset bootstrap servers mean "the local stack": every local broker, so a client can start
        # while any one of them is down.
        if "bootstrap_servers" not in self.model_fields_set:
            self.bootstrap_servers = ",".join(
                f"127.0.0.1:{self.node_ports(n)[0]}" for n in range(1, self.brokers + 1)
            )
        return self

    client_id: str = Field("esports", description="client.id prefix of producers and consumers.")
    compression: str = Field("lz4", description="Producer compression: none, gzip, snappy, lz4 or zstd.")
    linger_ms: int = Field(5, description="Producer batching delay in milliseconds.")
    max_batch_size: int = Field(65536, description="Producer batch size in bytes per partition.")
    request_timeout_ms: int = Field(30000, description="Client request timeout in milliseconds.")
    topic_prefix: str = Field(
        "",
        description="Prefix on every catalogue topic name (a namespace: shared clusters, test isolation).",
    )
    secure: bool = Field(
        False,
        description="Run the local broker with TLS + SASL/SCRAM + ACLs (`make up SECURE=1`), and connect "
        "to it that way: SASL_SSL with the local CA, as the admin user unless a username is set.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] | None = Field(
        None, description="How clients reach the brokers. Default: SASL_SSL when secure, else PLAINTEXT."
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism of SASL_SSL."
    )
    username: str | None = Field(
        None, description="SASL user of this service. Default: none (admin when secure and local)."
    )
    password: SecretStr | None = Field(None, description="SASL password (or password_file). No default.")
    password_file: Path | None = Field(
        None, description="File holding the SASL password (first line). Default: none."
    )
    ssl_cafile: Path | None = Field(
        None,
        description="CA bundle (PEM) the brokers' certificates are checked against. Default: system CAs.",
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )

    @property
    def protocol(self) -> str:
        """``security_protocol``, or its default for ``secure``."""
        return self.security_protocol or ("SASL_SSL" if self.secure else "PLAINTEXT")

    def sasl_password(self) -> str | None:
        """The SASL password, from ``password`` or ``password_file`` (read when asked, never logged)."""
        return secret_value(self.password, self.password_file)


class PostgresSettings(BaseModel):
    """The PostgreSQL read-model database."""

    host: str = Field("127.0.0.1", description="PostgreSQL host.")
    port: int = Field(5432, description="PostgreSQL port (also the port the local instance listens on).")
    user: str = Field("esports", description="Database user (created by `esports infra up`).")
    password: str = Field("esports", description="Database password; set a real secret outside local runs.")
    database: str = Field("esports", description="Database name.")
    shared_buffers: str = Field(
        "128MB", description="shared_buffers of the local instance (25% of RAM on a DB host)."
    )
    max_connections: int = Field(200, description="max_connections of the local instance.")
    password_file: Path | None = Field(
        None, description="File holding the database password (first line); wins over password."
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, description="libpq sslmode (verify-full in production). Default: libpq's own (prefer)."
    )
    sslrootcert: Path | None = Field(
        None, description="CA (PEM) the server certificate is checked against under verify-ca/verify-full."
    )
    ssl: bool = Field(
        False, description="Run the local instance with ssl=on, its certificate signed by the local CA."
    )
    service_roles: bool = Field(
        False,
        description="Give each service its own least-privilege role (esports_api, esports_projector), "
        "created by `esports infra up postgres`; the local apps connect as theirs.",
    )

    @property
    def dsn(self) -> str:
        password = secret_value(SecretStr(self.password), self.password_file) or ""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "password": password,
            "dbname": self.database,
        }
        if self.sslmode is not None:
            parts["sslmode"] = self.sslmode
        if self.sslrootcert is not None:
            parts["sslrootcert"] = str(self.sslrootcert)
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in parts.items())


class RedisSettings(BaseModel):
    """The Redis live-state store."""

    host: str = Field("127.0.0.1", description="Redis host.")
    port: int = Field(6379, description="Redis port (also the port the local instance listens on).")
    db: int = Field(0, description="Redis database number.")
    cluster: bool = Field(
        False, description="Connect as a Redis Cluster client (host:port is any node; db must be 0)."
    )
    maxmemory: str = Field("256mb", description="maxmemory of the local instance.")
    username: str | None = Field(
        None, description="Redis ACL user (AUTH username password). Default: none (the default user)."
    )
    password: SecretStr | None = Field(None, description="Password of the ACL user (or password_file).")
    password_file: Path | None = Field(None, description="File holding the Redis password (first line).")
    tls: bool = Field(False, description="Connect over TLS (rediss://).")
    tls_cafile: Path | None = Field(
        None, description="CA (PEM) the server certificate is checked against over TLS. Default: system CAs."
    )

    def auth_password(self) -> str | None:
        """The password, from ``password`` or ``password_file`` (read when asked, never logged)."""
        return secret_value(self.password, self.password_file)

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


def secret_value(value: SecretStr | None, path: Path | None) -> str | None:
    """A secret from its file (first line; the file wins) or its value; None when neither is set."""
    if path is not None:
        return path.read_text().splitlines()[0] if path.stat().st_size else ""
    return value.get_secret_value() if value is not None else None


def _conninfo_value(value: str) -> str:
    """A libpq conninfo value, quoted when it holds spaces, quotes or backslashes (a real password may)."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StackSettings(BaseModel):
    """Where the local stack keeps its data, logs and downloaded jars."""

    run_dir: Path = Field(REPO_ROOT / ".run", description="Git-ignored folder for data, logs, pids and jars.")
    start_timeout_s: float = Field(60.0, description="How long `esports infra up` waits for each service.")


class PrometheusSettings(BaseModel):
    """The local Prometheus of `make up OBSERVE=1`, scraping every service of the stack on loopback."""

    enabled: bool = Field(
        False,
        description="Run a local Prometheus with the stack: `esports up` and `esports infra up` start it "
        "(`make up OBSERVE=1` sets this).",
    )
    port: int = Field(9090, description="Port of the local Prometheus (its UI and HTTP API) on 127.0.0.1.")
    scrape_interval_s: int = Field(
        10, ge=1, description="Seconds between two scrapes of each service, and between rule evaluations."
    )
    retention: str = Field(
        "7d", description="How long the local Prometheus keeps samples (--storage.tsdb.retention.time)."
    )


class ApiSettings(BaseModel):
    """The web + REST API service (FastAPI under uvicorn)."""

    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, description="Port of the web pages and REST API.")
    workers: int = Field(1, description="uvicorn worker processes (one per core on a dedicated host).")
    public_url: str = Field("http://127.0.0.1:8000", description="Base URL users reach the API at (links).")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS, as a JSON list; empty = same origin only."
    )
    max_body_bytes: int = Field(65536, description="Largest accepted request body; larger gets 413.")
    head_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's line and headers (then 408)."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (JSON list of addresses or CIDR blocks) whose X-Forwarded-For is "
        "believed for per-IP limits, at the API and the edges; empty = the peer address is the client.",
    )
    read_your_writes_timeout_s: float = Field(
        5.0, description="How long a query waits for the read model to reach a position the client names."
    )
    publish_timeout_s: float = Field(
        3.0,
        gt=0,
        description="How long a command waits for Kafka to acknowledge its events before it answers 503 "
        "with Retry-After (and publishes nothing later).",
    )
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After (seconds) of a 503 while Kafka is unreachable."
    )
    clips_per_minute: int = Field(
        5,
        ge=1,
        description="Clip requests a user may make per minute (`ESPORTS_API__CLIPS_PER_MINUTE`); more get "
        "429 with Retry-After until the minute's window ends.",
    )
    clip_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a clip may stay pending (`ESPORTS_API__CLIP_TIMEOUT_S`); after that the API and "
        "pages report it failed (no ingest node holds the stream's segments), unless it is cut later.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # a typo fails at start, naming the entry
        return value


class AuthSettings(BaseModel):
    """Accounts and tokens. Secrets have no defaults: `esports up` writes local ones to .run/secrets.env."""

    jwt_secret: SecretStr | None = Field(
        None,
        description="HS256 signing key of access and refresh tokens (32+ random bytes). Required by the API.",
    )
    jwt_issuer: str = Field("esports-live", description="`iss` of issued tokens, checked on every request.")
    jwt_audience: str = Field("esports-live", description="`aud` of issued tokens, checked on every request.")
    access_ttl_s: int = Field(900, description="Lifetime of an access token in seconds.")
    refresh_ttl_s: int = Field(30 * 24 * 3600, description="Lifetime of a refresh token in seconds.")
    login_attempts_per_minute: int = Field(
        5, description="Failed logins allowed per username and per client IP per minute before 429."
    )
    internal_token: SecretStr | None = Field(
        None, description="Shared secret of internal endpoints (ingest hooks). Required by the API."
    )


class ProcessorSettings(BaseModel):
    """The Faust stream-processor workers."""

    web_host: str = Field(
        "127.0.0.1", description="Address a worker's /health and /metrics bind to (0.0.0.0 in a container)."
    )
    web_port: int = Field(6066, description="Port of a worker's /health and /metrics (Faust's web server).")
    data_dir: Path = Field(REPO_ROOT / ".run" / "faust", description="Where Faust keeps local table state.")
    session_timeout_s: float = Field(
        10.0, description="Consumer-group session timeout: how soon a crashed worker's partitions move on."
    )
    viewer_window_s: float = Field(
        30.0,
        description="A viewer counts this long after a heartbeat (edges send one every 15 s: keep it > 30).",
    )


class ProjectionSettings(BaseModel):
    """The projectors writing the read models (PostgreSQL, Redis)."""

    web_host: str = Field(
        "127.0.0.1",
        description="Address the projector's /health and /metrics bind to (0.0.0.0 in a container).",
    )
    web_port: int = Field(6067, description="Port of the projector service's /health and /metrics.")
    batch_size: int = Field(500, description="Most events applied in one PostgreSQL transaction.")


class IngestSettings(BaseModel):
    """RTMP/SRT ingest, the FFmpeg transcoding workers, the HLS origin and its cache tier."""

    host: str = Field("127.0.0.1", description="Address the ingest listeners and HLS servers bind to.")
    rtmp_port: int = Field(1935, description="RTMP ingest port (OBS: rtmp://HOST/live).")
    srt_port: int = Field(9000, description="SRT ingest port (streamid carries the stream key).")
    origin_port: int = Field(8080, description="HLS origin (nginx) port.")
    cdn_port: int = Field(
        8081, description="HLS cache tier (nginx proxy_cache) port, the URL viewers use locally."
    )
    hook_port: int = Field(
        8090, description="Port of the ingest control service (nginx-rtmp on_publish hooks)."
    )
    whip_port: int = Field(
        8088,
        description="WHIP ingest port (WebRTC: OBS posts its offer to http://HOST:PORT/whip, bearer = key).",
    )
    whip_udp_ports: str = Field(
        "",
        pattern=r"^(|[0-9]{1,5}-[0-9]{1,5})$",
        description="WHIP media (ICE) UDP ports as FIRST-LAST, e.g. 20000-20009, to publish behind NAT "
        "(a container, a LoadBalancer); each publisher takes one. Empty: any free port (local use).",
    )
    whip_public_ip: str = Field(
        "",
        description="The address WHIP publishers reach this node's media ports at, behind a 1:1 NAT "
        "(the Docker host's, the LoadBalancer's): answers offer it as the only ICE candidate, on a "
        "socket bound to every local address. Empty: the node's own addresses (local use).",
    )
    hls_dir: Path = Field(REPO_ROOT / ".run" / "hls", description="Where the transcoders write HLS files.")
    public_hls_url: str = Field(
        "http://127.0.0.1:8081/hls",
        description="Base URL of the HLS files as viewers reach them (a CDN in production).",
    )
    api_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL the ingest hook reaches the API's internal endpoints at.",
    )
    segment_s: float = Field(
        2.0, description="HLS segment duration in seconds (1-2); keyframes are forced at this interval."
    )
    ladder: list[str] = Field(
        default_factory=lambda: ["720p:2800", "480p30:1200", "360p30:700"],
        description="ABR rungs as HEIGHTp[FPS]:KBPS (JSON list) below the passthrough; never upscaled.",
    )
    passthrough: bool = Field(True, description="Pass an H.264 source through as the top rendition.")
    x264_preset: str = Field(
        "veryfast", description="libx264 preset of the ladder (faster = less CPU, more bits)."
    )
    x264_tune: str = Field(
        "zerolatency",
        description="libx264 tune; zerolatency (no lookahead, no B-frames) cuts latency and CPU.",
    )
    end_grace_s: float = Field(
        10.0, description="How long a stream waits for its publisher to come back before it ends (VOD)."
    )
    restart_backoff_max_s: float = Field(
        10.0, description="Longest wait before restarting a crashed FFmpeg (doubling from 0.5 s)."
    )
    health_interval_s: float = Field(5.0, description="Interval of IngestHealthReported events per stream.")
    silence_end_s: float = Field(
        30.0,
        description="A live stream whose ingest node sent no IngestHealthReported for this long ends "
        "(the node died without a disconnect); a publisher reconnecting to another node goes live again.",
    )
    rtmp_module: Path = Field(
        Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
        description="nginx RTMP module loaded by the ingest nginx (Debian: libnginx-mod-rtmp).",
    )
    demo_channel: str = Field(
        "demo", description="Slug of the channel `esports demo` pushes its test stream to."
    )
    thumbnail_interval_s: float = Field(
        10.0, description="How often the transcoder refreshes a stream's still (thumb.jpg next to the HLS)."
    )
    dvr_window_s: float = Field(
        7200.0,
        ge=0,
        description="Seconds of a live stream its playlists list, so viewers can seek back (DVR); "
        "0 = a short live window only (6 segments). The VOD at the end lists the whole session.",
    )
    vod_retention_days: float = Field(
        0.0,
        ge=0,
        description="Days an ended stream's replay (its HLS folder) stays on this node before the retention "
        "sweep deletes it (StreamVodDeleted, reason retention); 0 = keep replays forever.",
    )
    vod_sweep_interval_s: float = Field(
        3600.0,
        gt=0,
        description="How often each ingest node sweeps hls_dir for replays older than vod_retention_days.",
    )
    low_latency: bool = Field(
        True,
        description="Low-Latency HLS (false: standard HLS only): FFmpeg writes part_s parts, the "
        "playlists list them (EXT-X-PART, EXT-X-PRELOAD-HINT, rendition reports) and answer blocking "
        "reloads (_HLS_msn/_HLS_part) from the LL origin; segments stay segment_s long (their parts "
        "concatenated).",
    )
    part_s: float = Field(
        0.5,
        gt=0,
        description="Low-Latency HLS part duration in seconds; must divide segment_s (e.g. 0.5 of 2).",
    )
    ll_origin_port: int = Field(
        8091,
        description="Port of the Low-Latency HLS origin (blocking playlist reloads, preload-hinted parts) "
        "the origin nginx forwards to when low_latency is on; on 127.0.0.1 only.",
    )

    @property
    def whip_udp_port_range(self) -> range | None:
        """``whip_udp_ports`` as a range of ports, None when unset."""
        if not self.whip_udp_ports:
            return None
        first, last = (int(p) for p in self.whip_udp_ports.split("-"))
        return range(first, last + 1)

    @model_validator(mode="after")
    def _whip_nat(self) -> IngestSettings:
        ports = self.whip_udp_port_range
        if ports is not None and not (1024 <= ports.start <= ports.stop - 1 <= 65535):
            raise ValueError(f"ingest whip_udp_ports {self.whip_udp_ports}: FIRST-LAST in 1024-65535")
        if self.whip_public_ip:
            ipaddress.ip_address(self.whip_public_ip)  # ValueError names the value
        return self

    @model_validator(mode="after")
    def _parts_divide_segments(self) -> IngestSettings:
        parts = self.segment_s / self.part_s
        if self.low_latency and (parts < 1 or abs(parts - round(parts)) > 1e-6):
            raise ValueError(f"ingest part_s {self.part_s} must divide segment_s {self.segment_s}")
        return self


class EdgeSettings(BaseModel):
    """Websocket edge nodes (chat, counts, polls, notifications)."""

    host: str = Field("127.0.0.1", description="Address edge nodes bind to.")
    port: int = Field(8765, description="Port of the first local edge node.")
    second_port: int = Field(8766, description="Port of the second local edge node (`make up` runs two).")
    max_frame_bytes: int = Field(4096, description="Largest client frame; larger closes with 1009.")
    node_id: str = Field("", description="Name of this node in events (edge_id); empty = host name and port.")
    history_per_stream: int = Field(
        500, description="Chat events per stream kept in memory for backfill and `since` resume."
    )
    backfill_messages: int = Field(50, description="Recent chat events sent on a subscribe without `since`.")
    warm_start_records: int = Field(
        2000, description="Records per partition read back at start, so a fresh node can resume clients."
    )
    send_buffer_bytes: int = Field(
        262144, description="Unsent bytes a connection may queue before it is dropped as slow (close 1013)."
    )
    client_messages_per_s: float = Field(
        20.0, description="Sustained messages per second a connection may send; more get `rate_limited`."
    )
    client_burst: int = Field(40, description="Messages a connection may send in a burst above that rate.")
    max_connections_per_ip: int = Field(
        100, description="Concurrent connections per client address; more get HTTP 429 at the handshake."
    )
    ping_interval_s: float = Field(20.0, description="Seconds between pings to each client.")
    ping_timeout_s: float = Field(
        20.0, description="Seconds a client has to answer a ping before close 1011."
    )
    heartbeat_flush_s: float = Field(
        5.0, description="How often the node publishes the viewer heartbeats it collected, as one batch."
    )
    drain_timeout_s: float = Field(
        5.0, description="On SIGTERM, how long clients get to close after the `reconnect` notice."
    )
    fanout: str = Field(
        "frames",
        description="How deliveries are written: frames (frame once, same bytes to every transport), "
        "broadcast (websockets.broadcast) or naive (await send per client; benchmarks only).",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes of one edge node, sharing its port (SO_REUSEPORT), each with its own "
        "Kafka reader and connections: to hold more connections than one process's open-file limit, "
        "or to use more cores. 1 = the node is one process.",
    )


class WebSettings(BaseModel):
    """The viewer web pages served by the API (``web/``)."""

    edge_urls: list[str] = Field(
        default_factory=list,
        description="Websocket URLs of the edge nodes browsers connect to (JSON list, tried in turn); "
        "empty = ws://EDGE_HOST:EDGE_PORT and the second local node.",
    )
    site_name: str = Field("eSports live", description="Site name in page titles and link previews.")


class ChatSettings(BaseModel):
    """Chat rules applied by the moderation agent."""

    max_message_length: int = Field(500, description="Longest accepted chat message, in characters.")
    rate_limit_messages: int = Field(
        20, description="Messages a viewer may have accepted per rate-limit window (moderators exempt)."
    )
    rate_limit_window_s: int = Field(30, description="Length of the per-user rate-limit window, in seconds.")
    duplicate_window_s: int = Field(
        30, description="A viewer's repeat of their own message within this many seconds is rejected."
    )
    unique_chat_window_s: int = Field(
        60, description="In unique-chat mode, a message anyone sent within this many seconds is rejected."
    )
    max_caps_ratio: float = Field(0.8, description="Largest share of capital letters in a long message.")
    caps_min_letters: int = Field(20, description="Messages with fewer letters are not checked for capitals.")
    max_repeated_chars: int = Field(15, description="Longest run of one repeated character.")
    max_repeated_words: int = Field(8, description="Longest run of one word repeated back to back.")
    max_marks_per_char: int = Field(
        3, description="Most combining marks on one character (zalgo); half of it is the average limit."
    )
    hold_threshold: float = Field(
        0.6, description="Risk score (0-1) from which a message is held for a moderator instead of shown."
    )
    blocked_terms: list[str] = Field(
        default_factory=list,
        description="Terms blocked in every channel (JSON list), matched after normalisation.",
    )
    link_policy: Literal["allow", "deny", "allowlist"] = Field(
        "allow", description="Links where a channel has not chosen: allow, deny, or allowlist only."
    )
    link_allowlist: list[str] = Field(
        default_factory=list, description="Domains (JSON list) allowed under the allowlist policy."
    )


class PointsSettings(BaseModel):
    """How viewers earn channel points (the earning workers; README *Channel points*)."""

    watch_window_s: float = Field(
        300.0,
        gt=0,
        description="Watching earns per window of this many seconds: a signed-in viewer seen in 4 of its "
        "5 fifths earns watch_points once per stream.",
    )
    watch_points: int = Field(10, ge=0, description="Points for one window of watching a stream.")
    chat_window_s: float = Field(
        600.0, gt=0, description="Chatting earns at most once per window of this many seconds and stream."
    )
    chat_points: int = Field(5, ge=0, description="Points for the first accepted chat message of a window.")


class ExportSettings(BaseModel):
    """The analytics dataset `esports export` writes (README *Rebuild and analytics*)."""

    root: str = Field(
        str(REPO_ROOT / ".run" / "dataset"),
        description="Where the dataset goes: a folder, or s3://bucket/prefix. Default: .run/dataset.",
    )
    topics: str = Field(
        "streams,streams.lifecycle,tournaments,chat.messages,viewers.sessions,viewers.counts,"
        "viewers.match_counts,polls,predictions.odds,points.ledger",
        description="Topics exported when --topics is not given, comma separated.",
    )
    roll_records: int = Field(1_000_000, gt=0, description="A file is closed after this many records.")
    roll_bytes: int = Field(
        128 * 1024 * 1024,
        gt=0,
        description="A file is closed once about this many bytes are written (Parquet, plus buffered Arrow).",
    )
    roll_age_s: float = Field(
        300.0,
        gt=0,
        description="A file is closed this many seconds after it was opened (data lands in time).",
    )
    row_group_rows: int = Field(100_000, gt=0, description="Rows per Parquet row group.")
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often the service looks for new records once it has caught up."
    )
    s3_endpoint: str | None = Field(
        None, description="S3-compatible endpoint URL (http://host:port). Default: AWS for the region."
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key: str | None = Field(
        None,
        description="S3 access key id. Default: none (anonymous: the client never reads AWS_* itself).",
    )
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key. No default.")
    web_host: str = Field("127.0.0.1", description="Address of the export service's /health and /metrics.")
    web_port: int = Field(6068, description="Port of the export service's /health and /metrics.")


class Settings(BaseSettings):
    """All settings of the platform, one nested model per concern."""

    model_config = SettingsConfigDict(
        env_prefix="ESPORTS_",
        env_nested_delimiter="__",
        extra="ignore",
        # Local secrets generated by `esports infra up`; real environment variables win over it.
        env_file=REPO_ROOT / ".run" / "secrets.env",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    processors: ProcessorSettings = Field(default_factory=ProcessorSettings)
    projections: ProjectionSettings = Field(default_factory=ProjectionSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    points: PointsSettings = Field(default_factory=PointsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    log_level: str = Field("INFO", description="Log level of every service.")
    log_format: str = Field("text", description="Log format: text (for people) or json (for log shippers).")

    @model_validator(mode="after")
    def _local_tls(self) -> Settings:
        # A secure local broker (`make up SECURE=1`): its CA and, unless a service names its own user,
        # the admin's credentials, all written under run_dir by `esports infra up`.
        kafka, secrets, ca = (
            self.kafka,
            self.stack.run_dir / "kafka-secure",
            self.stack.run_dir / "tls" / "ca.pem",
        )
        if kafka.secure and kafka.ssl_cafile is None:
            kafka.ssl_cafile = ca
        if kafka.secure and kafka.username is None:
            kafka.username = "admin"
        if kafka.secure and kafka.password is None and kafka.password_file is None:
            kafka.password_file = secrets / "users" / f"{kafka.username}.password"
        # A local PostgreSQL with ssl=on: clients check its certificate against the local CA.
        if self.postgres.ssl and self.postgres.sslmode is None:
            self.postgres.sslmode = "verify-full"
        if self.postgres.ssl and self.postgres.sslrootcert is None:
            self.postgres.sslrootcert = ca
        return self
