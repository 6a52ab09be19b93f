"""What a dead-connection check costs per request, in one run (issue 9, "Connections recover").

Three pools on the same PostgreSQL, each serving N "requests" of one checkout
and one small query (what a cached shop page does at least):

- none: no check (a connection killed while idle fails the next request);
- kamen: the check kamen.connections installs (poll the idle socket, no round trip);
- pre_ping: SQLAlchemy's pool_pre_ping (one extra round trip per checkout).

    .venv/bin/python bench/connection_bench.py [--requests 2000] [--rounds 9]

It creates and drops kamen_connbench_<pid> on 127.0.0.1:5432.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import Pool

from common import pg_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(engine, requests, check):
    """µs per request: checkout + SELECT 1 + return to the pool."""
    if not check:  # kamen's check listens on every Pool: off while measuring the others
        event.remove(Pool, "checkout", _listener())
    try:
        start = time.perf_counter()
        for _ in range(requests):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar()
        return (time.perf_counter() - start) / requests * 1e6
    finally:
        if not check:
            event.listen(Pool, "checkout", _listener())


def _listener():
    from kamen import connections

    return connections._drop_closed_connection


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    import kamen.connections  # noqa: F401  (installs the checkout check)

    url, drop = pg_database(args.pg_admin_url, f"kamen_connbench_{os.getpid()}")
    variants = {"none": (False, False), "kamen": (False, True), "pre_ping": (True, False)}
    engines = {name: sa.create_engine(url, pool_pre_ping=ping) for name, (ping, _check) in variants.items()}
    results = {name: [] for name in variants}
    try:
        for name, engine in engines.items():  # warm: one connection each
            measure(engine, 10, variants[name][1])
        for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits all three
            for name, engine in engines.items():
                results[name].append(measure(engine, args.requests, variants[name][1]))
    finally:
        for engine in engines.values():
            engine.dispose()
        drop()
    none, kamen, ping = (statistics.median(results[n]) for n in ("none", "kamen", "pre_ping"))
    print(f"{args.requests} checkouts + SELECT 1, median of {args.rounds} interleaved rounds, µs per request")
    print(f"none       {none:8.1f} µs")
    print(f"kamen      {kamen:8.1f} µs {kamen - none:+7.1f} µs ({kamen / none:.2f}x)")
    print(f"pre_ping   {ping:8.1f} µs {ping - none:+7.1f} µs ({ping / none:.2f}x)")


if __name__ == "__main__":
    main()
