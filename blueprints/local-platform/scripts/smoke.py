"""Smoke test of a local-platform environment, run after apply.

Reads the environment's Terraform outputs from environment variables
(STAMP_OUTPUT_<OUTPUT NAME IN CAPITALS>):

    STAMP_OUTPUT_DATABASE_PATH     required: the SQLite database
    STAMP_OUTPUT_ENV_DIR           optional: checks network.json, the service's files
    STAMP_OUTPUT_DNS_ZONE          optional: checks the zone file (needs ENV_DIR)
    STAMP_OUTPUT_SERVICE_ENDPOINT  optional: must match the service's status file
    SMOKE_EXPECT_CUSTOMERS         optional: seeded customers expected (default: the
                                   count recorded in the database's stamp_meta table)

Prints one line per check and a closing count of checks; exits 0 when
every check passed, 1 otherwise. Read-only: it never changes the environment.
"""

import json
import os
import sqlite3
import sys
from urllib.request import pathname2url

ORDERS_PER_CUSTOMER = 3
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        check(f"{path} is readable JSON", False, str(exc))
        return None


def check_database(path):
    if not check("database exists", bool(path) and os.path.isfile(path), path or "STAMP_OUTPUT_DATABASE_PATH is not set"):
        return
    try:
        connection = sqlite3.connect(f"file:{pathname2url(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = {"customers", "orders", "credentials", "stamp_meta"} - tables
            if not check("database has its tables", not missing, f"missing {', '.join(sorted(missing))}" if missing else ""):
                return
            meta = dict(connection.execute("SELECT key, value FROM stamp_meta"))
            expected = int(os.environ.get("SMOKE_EXPECT_CUSTOMERS") or meta.get("seed_customers", "0"))
            (seeded,) = connection.execute("SELECT COUNT(*) FROM customers WHERE id <= ?", (expected,)).fetchone()
            check("seeded customers are there", seeded == expected, f"{seeded} of {expected}")
            (orders,) = connection.execute(
                "SELECT COUNT(*) FROM orders WHERE customer_id <= ?", (expected,)
            ).fetchone()
            check("seeded orders are there", orders == expected * ORDERS_PER_CUSTOMER, f"{orders} of {expected * ORDERS_PER_CUSTOMER}")
            (orphans,) = connection.execute(
                "SELECT COUNT(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers)"
            ).fetchone()
            check("every order has its customer", orphans == 0, f"{orphans} orphaned orders" if orphans else "")
            (integrity,) = connection.execute("PRAGMA quick_check").fetchone()
            check("database integrity", integrity == "ok", integrity)
        finally:
            connection.close()
    except (sqlite3.Error, ValueError) as exc:
        check("database is readable", False, str(exc))


def check_files(env_dir, zone, endpoint):
    network = read_json(os.path.join(env_dir, "network.json"))
    if network is not None:
        check("network has subnets", bool(network.get("cidr")) and bool(network.get("zones")), network.get("cidr", ""))
    if zone:
        zone_file = os.path.join(env_dir, "dns", f"{zone}.zone")
        check("DNS zone file exists", os.path.isfile(zone_file), zone_file)
    status = read_json(os.path.join(env_dir, "service", "status.json"))
    if status is not None:
        check("service is running", status.get("status") == "running", status.get("name", ""))
        replicas = status.get("replicas") or []
        check("service replicas are running", bool(replicas) and all(r.get("status") == "running" for r in replicas), f"{len(replicas)} replicas")
        if endpoint:
            check("service endpoint matches", status.get("endpoint") == endpoint, f"{status.get('endpoint')} vs {endpoint}")


def main():
    check_database(os.environ.get("STAMP_OUTPUT_DATABASE_PATH", ""))
    env_dir = os.environ.get("STAMP_OUTPUT_ENV_DIR", "")
    if env_dir:
        check("environment directory exists", os.path.isdir(env_dir), env_dir)
        if os.path.isdir(env_dir):
            check_files(env_dir, os.environ.get("STAMP_OUTPUT_DNS_ZONE", ""), os.environ.get("STAMP_OUTPUT_SERVICE_ENDPOINT", ""))
    passed = sum(results)
    failed = len(results) - passed
    print(f"smoke checks: {passed} ok and {failed} failing")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
