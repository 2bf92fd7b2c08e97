"""Statistics of a local-platform database, for comparing a clone with its source.

    DB_PATH=/tmp/stamp-local/local-staging/data.sqlite python3 scripts/stats.py

prints one JSON object on stdout:

    {"data": {"customers": {"count": N}, "orders": {"count": M}}}

Exit codes: 0 on success, 1 when DB_PATH is unset, missing or not such a database.
The database is opened read-only.
"""

import json
import os
import sqlite3
import sys
from urllib.request import pathname2url

TABLES = ("customers", "orders")


def fail(message):
    print(f"stats.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    path = os.environ.get("DB_PATH", "")
    if not path:
        fail("set DB_PATH to the database's path")
    if not os.path.isfile(path):
        fail(f"no database at {path}")
    try:
        connection = sqlite3.connect(f"file:{pathname2url(os.path.abspath(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        fail(f"cannot open {path}: {exc}")
    try:
        data = {}
        for table in TABLES:
            (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            data[table] = {"count": count}
    except sqlite3.Error as exc:
        fail(f"{path}: {exc}")
    finally:
        connection.close()
    json.dump({"data": data}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
