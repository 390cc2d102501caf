"""Secure connections as settings: defaults keep today's plaintext clients; the secure settings reach
every client (aiokafka, Faust, psycopg, redis-py); ACLs follow the catalogue's writers; secrets stay off
command lines."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import redis.exceptions
from cryptography import x509
from pydantic import SecretStr

from events.topics import CATALOGUE, Topic
from infra.kafka.names import client_options
from infra.redis import CacheAuthenticationFailed
from infra.redis import security_options as redis_options
from infra.redis import translate as translate_redis
from infra.security import (
    SERVICE_USERS,
    Operation,
    PatternType,
    ResourceType,
    acls_of,
    write_secret,
    writers_of,
)
from infra.settings import KafkaSettings, PostgresSettings, RedisSettings, Settings
from infra.stack import secure_broker
from infra.stack.certs import server_cert
from stream_processors.app import broker_security

SECURITY_KEYS = {
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
}


def _secure(tmp_path: Path, **kafka: object) -> Settings:
    return Settings(kafka={"secure": True, **kafka}, stack={"run_dir": tmp_path})


def test_the_defaults_are_todays_plaintext_clients() -> None:
    kafka = KafkaSettings()
    assert kafka.protocol == "PLAINTEXT"
    assert not SECURITY_KEYS & set(client_options(kafka, "api"))
    assert broker_security(kafka) == {}
    assert redis_options(RedisSettings()) == {}
    assert "sslmode" not in PostgresSettings().dsn


def test_a_secure_local_broker_means_sasl_ssl_as_admin_with_the_local_ca(tmp_path: Path) -> None:
    settings = _secure(tmp_path)
    kafka = settings.kafka
    assert (kafka.protocol, kafka.username) == ("SASL_SSL", "admin")
    assert kafka.ssl_cafile == tmp_path / "tls" / "ca.pem"
    assert kafka.password_file == tmp_path / "kafka-secure" / "users" / "admin.password"


def test_client_options_carry_the_user_and_the_password_from_its_file(tmp_path: Path) -> None:
    server_cert(tmp_path / "tls", "broker")
    write_secret(tmp_path / "pw", "s3cret\nignored")
    kafka = _secure(tmp_path, username="edge_ws", password_file=tmp_path / "pw").kafka
    options = client_options(kafka, "edge")
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("edge_ws", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_tls_without_sasl_sends_no_credentials(tmp_path: Path) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=server_cert(tmp_path, "b").ca)
    options = client_options(kafka, "api")
    assert options["security_protocol"] == "SSL" and "sasl_plain_password" not in options
    assert isinstance(broker_security(kafka)["broker_credentials"], faust.SSLCredentials)


def test_faust_gets_the_same_sasl_credentials(tmp_path: Path) -> None:
    server_cert(tmp_path / "tls", "broker")
    kafka = _secure(tmp_path, username="stream_processors", password=SecretStr("pw")).kafka
    credentials = broker_security(kafka)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("stream_processors", "pw")
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert "pw" not in repr(kafka)  # a SecretStr: never in a log line or `esports config`


def test_each_service_writes_only_its_catalogue_topics_and_the_dead_letters() -> None:
    for service in SERVICE_USERS:
        writes = {a.resource_name for a in acls_of(service) if a.operation is Operation.WRITE}
        declared = {spec.name for spec in CATALOGUE if service in writers_of(spec)} | {Topic.DEADLETTER}
        assert writes == declared, service
    assert {a.resource_name for a in acls_of("projections") if a.operation is Operation.WRITE} == {
        "deadletter"
    }


def test_acls_read_the_catalogue_and_own_their_groups_under_the_prefix() -> None:
    acls = acls_of("stream_processors", prefix="t1.")
    reads = {
        a.resource_name
        for a in acls
        if a.operation is Operation.READ and a.resource_type is ResourceType.TOPIC
    }
    assert reads == {f"t1.{spec.name}" for spec in CATALOGUE}
    owned = [a for a in acls if a.pattern is PatternType.PREFIXED]
    assert {(a.resource_type, a.resource_name, a.operation) for a in owned} == {
        (ResourceType.TOPIC, "t1.esports-processors", Operation.ALL),
        (ResourceType.GROUP, "t1.esports-processors", Operation.READ),
    }
    assert any(a.operation is Operation.IDEMPOTENT_WRITE for a in acls)
    assert all(a.principal == "User:stream_processors" for a in acls)


def test_postgres_dsn_has_verify_full_and_quotes_a_real_password(tmp_path: Path) -> None:
    write_secret(tmp_path / "pg", "it's a pass")
    pg = PostgresSettings(
        sslmode="verify-full", sslrootcert=tmp_path / "ca.pem", password_file=tmp_path / "pg"
    )
    assert "password='it\\'s a pass'" in pg.dsn
    assert f"sslmode=verify-full sslrootcert={tmp_path / 'ca.pem'}" in pg.dsn
    local = Settings(postgres={"ssl": True}, stack={"run_dir": tmp_path})
    assert (local.postgres.sslmode, local.postgres.sslrootcert) == (
        "verify-full",
        tmp_path / "tls" / "ca.pem",
    )


def test_redis_auth_and_tls_options(tmp_path: Path) -> None:
    redis = RedisSettings(username="live", password=SecretStr("pw"), tls=True, tls_cafile=tmp_path / "ca.pem")
    options = redis_options(redis)
    assert (options["username"], options["password"], options["ssl"]) == ("live", "pw", True)
    assert options["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert redis.url.startswith("rediss://")


def test_scram_passwords_reach_the_storage_tool_through_a_private_argfile(tmp_path: Path) -> None:
    settings = _secure(tmp_path)
    with secure_broker.format_arguments(settings, ["kafka.tools.StorageTool", "format"]) as argv:
        assert len(argv) == 1 and argv[0].startswith("@")
        argfile = Path(argv[0][1:])
        assert argfile.stat().st_mode & 0o777 == 0o600
        text = argfile.read_text()
    assert not argfile.exists()
    for user in ("admin", *SERVICE_USERS):
        password = secure_broker.password_file(settings, user).read_text().strip()
        assert f"name={user},password={password}]" in text
        assert secure_broker.password_file(settings, user).stat().st_mode & 0o777 == 0o600


def test_server_certificates_are_signed_by_the_local_ca_for_loopback(tmp_path: Path) -> None:
    cert = server_cert(tmp_path, "broker")
    ca = x509.load_pem_x509_certificate(cert.ca.read_bytes())
    leaf = x509.load_pem_x509_certificate(cert.cert.read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert cert.key.stat().st_mode & 0o777 == 0o600
    assert server_cert(tmp_path, "broker") == cert  # kept: clients holding the CA keep trusting it


def test_refused_redis_credentials_are_not_retriable() -> None:
    error = translate_redis(redis.exceptions.AuthenticationError("WRONGPASS"), "reading")
    assert isinstance(error, CacheAuthenticationFailed) and not error.retriable
