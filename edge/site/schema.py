"""The register's schema: numbered SQL migrations under ``edge/site/migrations/``, applied in
order under an advisory lock and recorded in ``schema_migrations``; and the connection."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

from edge.site.config import IngestConfig

MIGRATION_LOCK = 0x6C616E65  # pg_advisory_xact_lock key: one migrator at a time


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every file in edge/site/migrations, in order."""
    found = []
    for entry in resources.files("edge.site").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _n, _s in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {sorted(versions)}")
    return found


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations not yet recorded in schema_migrations. Returns their names."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(name)
    return applied


def connect(config: IngestConfig, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    db = config.database
    extra: dict[str, Any] = {"connect_timeout": db.connect_timeout_s}
    if db.password is not None:
        extra["password"] = db.password.read()
    return psycopg.connect(db.dsn, autocommit=autocommit, **extra)
