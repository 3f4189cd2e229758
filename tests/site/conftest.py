"""A private PostgreSQL for the register tests; each test gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from edge.devtools.localdb import LocalPostgres, find_pg_bin


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres]:
    if find_pg_bin() is None:
        pytest.fail("PostgreSQL is not installed; `make system-deps` installs it")
    cluster = LocalPostgres().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def dsn(pg_cluster: LocalPostgres) -> str:
    name = f"register_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())  # type: ignore[call-overload]
    return pg_cluster.dsn.replace("dbname=postgres", f"dbname={name}")
