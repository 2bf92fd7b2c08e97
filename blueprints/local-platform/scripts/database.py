"""The database: SQLite at DATABASE_PATH with tables customers, orders and
credentials (plus stamp_meta), seeded with SEED_CUSTOMERS customers, 3 orders and
1 credential each. Seeding is deterministic (same rows for the same count) and
idempotent: rows are inserted with fixed ids and INSERT OR IGNORE, so a retried
create never duplicates or overwrites data. Uses Python's built-in sqlite3 only.

create:  DATABASE_PATH, DATABASE_NAME, SEED_CUSTOMERS, STAMP_TAGS
destroy: DATABASE_PATH (and its -journal, -wal and -shm files)
"""

import datetime
import hashlib
import json
import os
import sqlite3
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import action, env, env_abspath, env_int, env_json, log, remove

ORDERS_PER_CUSTOMER = 3
COUNTRIES = ("DE", "FR", "NL", "GB", "US", "ES", "IT", "SE")
ORDER_STATUSES = ("paid", "shipped", "delivered", "refunded")
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

SCHEMA = """
CREATE TABLE IF NOT EXISTS stamp_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    country    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    amount_cents INTEGER NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    id            INTEGER PRIMARY KEY,
    customer_id   INTEGER NOT NULL REFERENCES customers (id),
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    api_key       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
"""


def digest(*parts):
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def rows(name, count):
    customers, orders, credentials = [], [], []
    for i in range(1, count + 1):
        created = EPOCH + datetime.timedelta(hours=i)
        customers.append(
            (i, f"Customer {i:06d}", f"customer{i:06d}@example.com", COUNTRIES[i % len(COUNTRIES)], created.isoformat())
        )
        for j in range(ORDERS_PER_CUSTOMER):
            order_id = (i - 1) * ORDERS_PER_CUSTOMER + j + 1
            amount = 500 + int(digest(name, "order", order_id)[:6], 16) % 50000
            status = ORDER_STATUSES[order_id % len(ORDER_STATUSES)]
            orders.append((order_id, i, amount, status, (created + datetime.timedelta(days=j + 1)).isoformat()))
        credentials.append(
            (
                i,
                i,
                f"customer{i:06d}",
                "sha256$" + digest(name, "password", i),
                "sk_live_" + digest(name, "api-key", i)[:32],
            )
        )
    return customers, orders, credentials


def seed(connection, name, count, tags):
    customers, orders, credentials = rows(name, count)
    with connection:
        connection.executescript(SCHEMA)
        connection.executemany("INSERT OR IGNORE INTO customers VALUES (?, ?, ?, ?, ?)", customers)
        connection.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?)", orders)
        connection.executemany("INSERT OR IGNORE INTO credentials VALUES (?, ?, ?, ?, ?)", credentials)
        meta = {
            "name": name,
            "seed_customers": str(count),
            "seed_orders": str(count * ORDERS_PER_CUSTOMER),
            "environment_version": tags.get("EnvironmentVersion", "unknown"),
            "tags": json.dumps(tags, sort_keys=True),
        }
        connection.executemany("INSERT OR IGNORE INTO stamp_meta VALUES (?, ?)", sorted(meta.items()))


def create(path):
    name = env("DATABASE_NAME")
    count = env_int("SEED_CUSTOMERS", minimum=0)
    tags = env_json("STAMP_TAGS")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        # A retried apply, or a database that outlived its state: top it up, never replace it.
        connection = sqlite3.connect(path)
        try:
            seed(connection, name, count, tags)
        finally:
            connection.close()
        log(f"{path} already existed: schema and seed rows checked")
        return
    # Build the new database beside its final path and rename it into place.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".sqlite", dir=os.path.dirname(path))
    os.close(fd)
    try:
        connection = sqlite3.connect(tmp)
        try:
            seed(connection, name, count, tags)
        finally:
            connection.close()
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, tmp + "-journal"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise
    log(f"created {path}: {count} customers, {count * ORDERS_PER_CUSTOMER} orders, {count} credentials")


def main():
    what = action()
    path = env_abspath("DATABASE_PATH")
    if what == "create":
        create(path)
    else:
        for suffix in ("-journal", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                remove(path + suffix)
        remove(path)


if __name__ == "__main__":
    main()
