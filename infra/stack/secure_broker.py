"""The local broker with TLS, SASL/SCRAM and ACLs (``ESPORTS_KAFKA__SECURE=1``, ``make up SECURE=1``).

Clients reach the broker on its client port over SASL_SSL (SCRAM-SHA-512), each service as its own
user; the controller listener takes TLS with client certificates only (the broker's own). Secrets
live under ``run_dir/kafka-secure/`` (files of mode 0600), never on a command line::

    ../tls/ca.pem              the local CA: ESPORTS_KAFKA__SSL_CAFILE of every client
    ../tls/broker.pem, .key    the broker's certificate (127.0.0.1, localhost)
    broker.keystore.pem        its key and chain, as Kafka reads them (ssl.keystore.type=PEM)
    users/<user>.password      the SCRAM password of admin and of each service user
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.kafka.admin import TopicAdmin
from infra.security import ADMIN, SERVICE_USERS, all_acls, new_password, write_secret
from infra.settings import KafkaSettings, Settings
from infra.stack.certs import server_cert

__all__ = ["append_security", "format_arguments", "grant_service_acls", "password_file", "service_env"]

BROKER_PRINCIPAL = "User:CN=esports-broker"  # the broker's certificate, on the controller listener


def folder(settings: Settings) -> Path:
    return settings.stack.run_dir / "kafka-secure"


def tls_folder(settings: Settings) -> Path:
    """The local CA and the servers' certificates (shared with PostgreSQL's)."""
    return settings.stack.run_dir / "tls"


def password_file(settings: Settings, user: str) -> Path:
    """The file of ``user``'s SCRAM password (created with a random one on first use)."""
    path = folder(settings) / "users" / f"{user}.password"
    if not path.is_file():
        write_secret(path, new_password())
    return path


def _password(settings: Settings, user: str) -> str:
    return password_file(settings, user).read_text().strip()


def append_security(settings: Settings, config: Path, client: int, controller: int) -> None:
    """Append the listeners, TLS, SASL and authorizer settings to a rendered server.properties (later
    keys win in a properties file) and make it readable by its owner only: it holds admin's password."""
    cert = server_cert(tls_folder(settings), "broker")
    keystore = write_secret(
        folder(settings) / "broker.keystore.pem", cert.key.read_text() + cert.cert.read_text()
    )
    mechanism = settings.kafka.sasl_mechanism
    jaas = (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" '
        f'password="{_password(settings, ADMIN)}";'
    )
    lines = [
        "",
        "############################# Security (ESPORTS_KAFKA__SECURE) #############################",
        f"listeners=SASL_SSL://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{client}",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        f"sasl.enabled.mechanisms={mechanism}",
        f"sasl.mechanism.inter.broker.protocol={mechanism}",
        f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={cert.ca}",
        "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        "listener.name.controller.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};{BROKER_PRINCIPAL}",
        "allow.everyone.if.no.acl.found=false",
    ]
    with config.open("a") as file:
        file.write("\n".join(lines) + "\n")
    config.chmod(0o600)


@contextmanager
def format_arguments(settings: Settings, arguments: list[str]) -> Iterator[list[str]]:
    """StorageTool's arguments, with the SCRAM users of a secure broker added through a java
    ``@argfile`` (mode 0600, deleted after): their passwords never appear on a command line."""
    if not settings.kafka.secure:
        yield arguments
        return
    mechanism = settings.kafka.sasl_mechanism
    users = (ADMIN, *SERVICE_USERS)
    scram = [f"--add-scram={mechanism}=[name={u},password={_password(settings, u)}]" for u in users]
    argfile = folder(settings) / f"format-{os.getpid()}.args"
    write_secret(argfile, "\n".join(f'"{a}"' for a in [*arguments, *scram]))
    try:
        yield [f"@{argfile}"]
    finally:
        argfile.unlink(missing_ok=True)


def service_env(settings: Settings, user: str | None) -> dict[str, str]:
    """The environment that makes a local service connect to a secure broker as ``user``."""
    if not settings.kafka.secure or user is None:
        return {}
    return {
        "ESPORTS_KAFKA__USERNAME": user,
        "ESPORTS_KAFKA__PASSWORD_FILE": str(password_file(settings, user)),
    }


async def grant_service_acls(kafka: KafkaSettings) -> int:
    """Create every service user's ACLs (as the admin; existing ones are kept); returns how many."""
    acls = all_acls(kafka.topic_prefix)
    async with TopicAdmin(kafka) as admin:
        await admin.create_acls(acls)
    return len(acls)
