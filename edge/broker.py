"""A checkpoint's broker: site description -> CA, client certificates, Mosquitto ACL and config.

Every client of the checkpoint's Mosquitto shows a certificate of the site CA; Mosquitto takes
the certificate's CN as the MQTT username (``use_identity_as_username``) and the ACL generated
here says what that name may publish and read. The names (docs/security.md):

    lane-<checkpoint>-<lane>         one lane agent (also its default MQTT client id)
    consumer-<checkpoint>-<name>     reads everything of the checkpoint, publishes nothing
    operator-<checkpoint>-<name>     sends commands to the lanes and reads their replies
    broker-<checkpoint>              the broker's server certificate

A lane's rules come from the contract (``edge.topics.contract_topics``), so a topic added
there is in the next generated ACL. `lane broker certs` (``edge.cli.broker``) is the command;
this module is its logic: pure functions for the texts, and ``issue_site`` for the files.
"""

from __future__ import annotations

import datetime as dt
import grp
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from edge.config import (
    IDENTIFIER,
    StrictModel,
    _clean_loc,  # the lane config's error locator, shared so both files read alike
    _Locator,
    _message,
)
from edge.errors import ConfigError, ConfigProblem, LaneError
from edge.topics import Topics, contract_topics
from edge.yamlload import decode, load_yaml

Name = Annotated[str, Field(pattern=IDENTIFIER)]

# Where the shipped config/broker/mosquitto.conf expects the files `lane broker certs` writes.
DEFAULT_PKI_DIR = Path("/etc/mosquitto/lane-agent")
DEFAULT_PORT = 8883
# The lane agent's `lane diag mqtt check` publishes and reads here (edge/diag/mqtt.py).
DIAG_TOPIC = "diag/+"


class BrokerError(LaneError):
    """The PKI directory cannot be used as it is (a human must look)."""

    exit_code = 2


# --- the site description ------------------------------------------------------------------


class SiteLane(StrictModel):
    name: Name
    neighbours: list[Name] = Field(
        default_factory=list,
        description="Lanes whose crossings this lane reads (its fusion.neighbour_lanes).",
    )


class SiteConfig(StrictModel):
    """One checkpoint: its lanes, the programs that read them, the operators."""

    checkpoint: Name
    topic_prefix: str = Field("border", description="The lanes' mqtt.topic_prefix.")
    broker_names: list[str] = Field(
        default_factory=lambda: ["localhost"],
        min_length=1,
        description="DNS names the lanes use for the broker (its certificate's SAN).",
    )
    broker_ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = Field(
        default_factory=lambda: [ipaddress.ip_address("127.0.0.1")],
        description="IP addresses the lanes may use for the broker (its certificate's SAN).",
    )
    lanes: list[SiteLane] = Field(min_length=1)
    consumers: list[Name] = Field(default_factory=list)
    operators: list[Name] = Field(default_factory=list)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", value):
            raise ValueError("a topic prefix is levels of A-Z a-z 0-9 _ . - joined by '/'")
        return value

    @field_validator("broker_names")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", name):
                raise ValueError(f"{name!r} is not a DNS name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        lanes = [lane.name for lane in self.lanes]
        for group, names in (
            ("lanes", lanes),
            ("consumers", self.consumers),
            ("operators", self.operators),
        ):
            seen = {n for n in names if names.count(n) > 1}
            if seen:
                raise ValueError(f"{group} named twice: {', '.join(sorted(seen))}")
        for lane in self.lanes:
            for neighbour in lane.neighbours:
                if neighbour == lane.name:
                    raise ValueError(f"lane {lane.name} names itself as a neighbour")
                if neighbour not in lanes:
                    raise ValueError(f"lane {lane.name}: neighbour {neighbour} is not a lane")
        return self


def parse_site(text: str, *, source: str = "<string>") -> SiteConfig:
    """Validate a site description given as YAML text; ConfigError lists every problem."""
    # The lane config's bounded loader: NUL, nesting, duplicate keys, all placed.
    document = load_yaml(text, source=source)
    root, data = document.root, document.data
    if document.problems:
        raise ConfigError(document.problems)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(source, 1, 1, "", "a site description is a mapping")])
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        locator = _Locator(root)
        problems = []
        for error in exc.errors():
            loc = _clean_loc(tuple(error["loc"]))
            line, column = locator.find(loc)
            path = ".".join(str(p) for p in loc)
            problems.append(ConfigProblem(source, line, column, path, _message(error)))
        raise ConfigError(problems) from None


def load_site(path: Path) -> SiteConfig:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    return parse_site(decode(data, source=str(path)), source=str(path))


# --- names and rules -----------------------------------------------------------------------


def lane_identity(checkpoint: str, lane: str) -> str:
    return f"lane-{checkpoint}-{lane}"


def consumer_identity(checkpoint: str, name: str) -> str:
    return f"consumer-{checkpoint}-{name}"


def operator_identity(checkpoint: str, name: str) -> str:
    return f"operator-{checkpoint}-{name}"


def broker_identity(checkpoint: str) -> str:
    return f"broker-{checkpoint}"


def client_identities(site: SiteConfig) -> list[str]:
    """Every client certificate's CN, lanes first."""
    c = site.checkpoint
    return (
        [lane_identity(c, lane.name) for lane in site.lanes]
        + [consumer_identity(c, n) for n in site.consumers]
        + [operator_identity(c, n) for n in site.operators]
    )


def _filter(pattern: str) -> str:
    """A contract topic pattern with its remaining ``{parameters}`` as single-level wildcards."""
    return re.sub(r"\{[a-z_]+\}", "+", pattern)


def lane_rules(site: SiteConfig, lane: SiteLane) -> list[tuple[str, str]]:
    """(access, topic filter) of one lane: its own topics from the contract, its neighbours'
    crossings, and the `lane diag mqtt check` test topic."""
    own = Topics(site.topic_prefix, site.checkpoint, lane.name)
    rules: list[tuple[str, str]] = []
    for spec in contract_topics():
        pattern = spec.pattern.replace("{prefix}/{checkpoint}/{lane}", own.base, 1)
        access = "write" if spec.direction == "publish" else "read"
        rules.append((access, _filter(pattern)))
    rules.append(("readwrite", f"{own.base}/{DIAG_TOPIC}"))
    for neighbour in lane.neighbours:
        rules.append(("read", Topics(site.topic_prefix, site.checkpoint, neighbour).crossing))
    return rules


def render_acl(site: SiteConfig) -> str:
    """The Mosquitto ACL file of a site (mosquitto.conf(5), ``acl_file``)."""
    c = site.checkpoint
    everything = f"{site.topic_prefix}/{c}/#"
    lines = [
        "# Mosquitto ACL generated by `lane broker certs` (edge/broker.py); do not edit by hand:",
        "# change the site description and run it again (docs/security.md).",
        f"# Checkpoint {c}, topic prefix {site.topic_prefix}. The username is the client",
        "# certificate's CN (use_identity_as_username). No rule before the first `user` line:",
        "# a certificate that no block below names may neither publish nor read anything.",
    ]
    for lane in site.lanes:
        lines += ["", f"# lane {lane.name}: its own topics, commands, neighbours' crossings"]
        lines.append(f"user {lane_identity(c, lane.name)}")
        lines += [f"topic {access} {topic}" for access, topic in lane_rules(site, lane)]
    for name in site.consumers:
        lines += ["", f"# consumer {name}: reads the checkpoint's topics, publishes nothing"]
        lines += [f"user {consumer_identity(c, name)}", f"topic read {everything}"]
    for name in site.operators:
        lines += ["", f"# operator {name}: commands to every lane, reads replies and state"]
        lines += [
            f"user {operator_identity(c, name)}",
            f"topic write {site.topic_prefix}/{c}/+/cmd/+",
            f"topic read {everything}",
        ]
    return "\n".join(lines) + "\n"


def render_mosquitto_conf(
    pki_dir: Path = DEFAULT_PKI_DIR,
    *,
    port: int = DEFAULT_PORT,
    bind: str | None = None,
    user: str = "mosquitto",
    persistence_dir: Path = Path("/var/lib/mosquitto"),
) -> str:
    """The broker's configuration for the files `lane broker certs` wrote into ``pki_dir``.

    config/broker/mosquitto.conf is this with the defaults (a test keeps them equal)."""
    d = pki_dir
    return f"""\
# Mosquitto 2.0 for one checkpoint's lanes (docs/security.md), written by `lane broker certs`.
# One TLS listener; every client shows a certificate of the site CA and its CN is its
# username; the ACL says what each name may publish and read. No anonymous access and no
# password logins: a client without a certificate of this CA does not get past TLS.
# Check it with `mosquitto -c <this file> -v`.
per_listener_settings false
allow_anonymous false
acl_file {d / "acl"}
# Started as root, Mosquitto switches to this user before it reads the files below: give
# its group the directory and broker.key (`lane broker certs --group {user}`).
user {user}
persistence true
persistence_location {persistence_dir}/
# The register (`lane ingest`, docs/site.md) keeps a persistent session: the broker queues
# the lanes' messages for it while it or its PostgreSQL is away. The default queue (1000
# messages a client) would drop new ones beyond that; a crash loses what arrived since the
# last save (default every 1800 s). Both show up as lane_seq gaps that cmd/replay repairs,
# but only while the lanes still keep the events: queue days, not minutes, and save often.
max_queued_messages 100000
max_queued_bytes 1073741824
autosave_interval 10
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true

listener {port}{f" {bind}" if bind else ""}
cafile {d / "ca.pem"}
certfile {d / "broker.pem"}
keyfile {d / "broker.key"}
crlfile {d / "crl.pem"}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
"""


# --- certificates --------------------------------------------------------------------------


@dataclass
class IssueReport:
    """What one run of `lane broker certs` did, name by name."""

    directory: Path
    created_ca: bool = False
    issued: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield f"directory     {self.directory}"
        yield f"CA            {'created' if self.created_ca else 'kept'}"
        for label, names in (
            ("issued", self.issued),
            ("kept", self.kept),
            ("revoked", self.revoked),
        ):
            yield f"{label:<13} {', '.join(names) or '-'}"


def issue_site(
    site: SiteConfig,
    directory: Path,
    *,
    days: int = 730,
    ca_days: int = 3650,
    renew_within_days: int = 30,
    renew: bool = False,
    group: str | None = None,
    now: dt.datetime | None = None,
) -> IssueReport:
    """Make or complete a site's PKI in ``directory``; idempotent.

    The CA is made once and kept. A certificate is issued when it is missing, was not signed
    by this CA, no longer matches the site (the broker's names), expires within
    ``renew_within_days``, or ``renew`` asks for all. A replaced certificate and one whose
    name left the site go on the CRL (crl.pem), so the old key stops working once the broker
    reads the new CRL. Then acl, crl.pem and mosquitto.conf are written.

    ``group`` (the broker's user, e.g. ``mosquitto``) gets the directory and broker.key
    (0640): Mosquitto reads its files after dropping root. The CA key and the clients'
    keys stay root's alone.
    """
    try:
        from edge import pki
    except ImportError as exc:  # the extra is missing
        raise BrokerError(
            f"`lane broker certs` needs the cryptography package ({exc.name} is missing): "
            "pip install 'lane-agent[broker]'"
        ) from None
    gid = -1
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise BrokerError(f"no group {group!r} on this machine") from None
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o750)
    clients = directory / "clients"
    clients.mkdir(exist_ok=True)
    clients.chmod(0o700)
    report = IssueReport(directory)
    ca, report.created_ca = pki.load_or_create_ca(
        directory, f"lane-agent CA {site.checkpoint}", days=ca_days, now=now
    )
    revoked_path = directory / "revoked.json"
    try:
        revoked: list[dict[str, Any]] = json.loads(revoked_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        revoked = []
    except (OSError, ValueError) as exc:
        raise BrokerError(f"{revoked_path} cannot be read: {exc}") from None

    broker = broker_identity(site.checkpoint)
    wanted: dict[str, tuple[Path, pki.Profile]] = {
        broker: (
            directory / "broker",
            pki.Profile(
                server=True,
                dns_names=tuple(site.broker_names),
                ip_addresses=tuple(site.broker_ips),
            ),
        )
    }
    for name in client_identities(site):
        wanted[name] = (clients / name, pki.Profile(server=False))
    for name, (stem, profile) in wanted.items():
        old = pki.read_certificate(stem.with_suffix(".pem"))
        if (
            old is not None
            and not renew
            and pki.fits(old, ca, name, profile, now + dt.timedelta(days=renew_within_days))
        ):
            report.kept.append(name)
            continue
        if old is not None and pki.signed_by(old, ca):
            revoked.append({"name": name, "serial": old.serial_number, "at": now.isoformat()})
        pki.issue(ca, stem, name, profile, days=days, now=now)
        report.issued.append(name)
    for pem in sorted(clients.glob("*.pem")):
        if pem.stem in wanted:
            continue
        old = pki.read_certificate(pem)
        if old is not None and pki.signed_by(old, ca):
            revoked.append({"name": pem.stem, "serial": old.serial_number, "at": now.isoformat()})
        pem.unlink()
        pem.with_suffix(".key").unlink(missing_ok=True)
        report.revoked.append(pem.stem)
    _write(revoked_path, json.dumps(revoked, indent=1) + "\n", 0o640)
    live = [pki.read_certificate(stem.with_suffix(".pem")) for stem, _ in wanted.values()]
    _write(directory / "crl.pem", pki.crl(ca, revoked, live, now=now), 0o644)
    _write(directory / "acl", render_acl(site), 0o644)
    _write(directory / "mosquitto.conf", render_mosquitto_conf(directory), 0o644)
    if gid != -1:
        os.chown(directory, -1, gid)
        os.chown(directory / "broker.key", -1, gid)
    (directory / "broker.key").chmod(0o640 if gid != -1 else 0o600)
    return report


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically: Mosquitto never reads half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8")
    part.chmod(mode)
    os.replace(part, path)
