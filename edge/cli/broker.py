"""`lane broker certs --site SITE.yaml --out DIR`: a checkpoint's CA, certificates and ACL.

Run it again after changing the site (a lane added, a consumer removed) or before
certificates expire: it keeps the CA and every certificate that still fits, issues the rest,
revokes what it replaced, and rewrites acl, crl.pem and mosquitto.conf (docs/security.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("broker", help="the checkpoint's Mosquitto: certificates and ACL")
    broker_sub = parser.add_subparsers(dest="broker_command", required=True)
    certs = broker_sub.add_parser(
        "certs", help="make or renew the site CA, broker and client certificates, ACL"
    )
    certs.add_argument("--site", type=Path, required=True, help="site description (YAML)")
    certs.add_argument("--out", type=Path, required=True, help="PKI directory (kept between runs)")
    certs.add_argument("--days", type=int, default=730, help="certificate validity (default 730)")
    certs.add_argument("--ca-days", type=int, default=3650, help="a new CA's validity (3650)")
    certs.add_argument(
        "--renew-within-days",
        type=int,
        default=30,
        help="reissue certificates expiring sooner than this (default 30)",
    )
    certs.add_argument(
        "--renew", action="store_true", help="reissue every certificate (the CA is kept)"
    )
    certs.add_argument(
        "--group",
        help="the broker's group (e.g. mosquitto): may read the directory and broker.key",
    )
    certs.set_defaults(func=cmd_broker_certs)


def cmd_broker_certs(args: argparse.Namespace) -> int:
    from edge.broker import issue_site, load_site

    for flag, value in (("--days", args.days), ("--ca-days", args.ca_days)):
        if not 1 <= value <= 36500:
            raise SystemExit(f"error: {flag} must be between 1 and 36500")
    if not 0 <= args.renew_within_days < args.days:
        raise SystemExit("error: --renew-within-days must be between 0 and --days")
    site = load_site(args.site)
    report = issue_site(
        site,
        args.out,
        days=args.days,
        ca_days=args.ca_days,
        renew_within_days=args.renew_within_days,
        renew=args.renew,
        group=args.group,
    )
    for line in report.lines():
        print(line)
    return 0
