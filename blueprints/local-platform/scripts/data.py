"""Data hooks of a local-platform account (archetype.yaml `data:`), run by Stamp for
`clone --data`, `sync` and `migrate` in the account's rendered root:

    python3 scripts/data.py snapshot|restore|scrub|stats|availability

Facts come from environment variables only. Every subcommand needs
STAMP_OUTPUT_DATABASE_PATH (the SQLite database) unless noted:

snapshot:     STAMP_ACCOUNT, STAMP_SNAPSHOT_DIR (also STAMP_SLOT, STAMP_VERSION,
              STAMP_ENVIRONMENT for the metadata) -> a consistent copy (sqlite3 backup
              API) in STAMP_SNAPSHOT_DIR/<id>.sqlite plus <id>.json (account, slot,
              version, time, sha256, row counts); prints the id as its last line,
              <account>-<UTC YYYYMMDDTHHMMSSZ>-<6 random hex>
restore:      STAMP_SNAPSHOT_DIR, STAMP_SNAPSHOT_ID, STAMP_SNAPSHOT_ACCOUNT -> checks the
              id, the sha256 and the row counts, then renames a verified copy onto
              the database (never a half-written one); safe to re-run
scrub:        rotates every credential (fresh password hash, `sk_test_` API key) and
              masks customers' names and e-mails, in one transaction; row counts stay
stats:        prints {"data": {"<table>": {"count": N}, ...}} (every table but
              stamp_meta and sqlite_*), opening the database read-only
availability: STAMP_OUTPUT_ENV_DIR, STAMP_AVAILABILITY (standby|active) -> writes
              service/availability.json and the `traffic` field of service/status.json;
              running it twice changes nothing the second time

Logs go to stderr; stdout holds only the results described above. Exit codes: 0 on
success, 1 with a message on stderr naming what failed.
"""

import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import sys
import tempfile
from urllib.request import pathname2url

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import env, env_abspath, fail, write_json

SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$")  # no leading dot: no hidden or temporary files
SIDE_FILES = ("-journal", "-wal", "-shm")
TRAFFIC = {"standby": "standby", "active": "serving"}


def note(message):
    print(f"data.py: {message}", file=sys.stderr, flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def unlink_quietly(*paths):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def connect(path, mode):
    """A connection to an existing database: mode `ro` (read-only) or `rw` (never creates one)."""
    if not os.path.isfile(path):
        fail(f"no database at {path}")
    try:
        return sqlite3.connect(f"file:{pathname2url(path)}?mode={mode}", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        fail(f"cannot open database {path}: {exc}")


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def counts(connection):
    """Row counts of every table but stamp_meta and SQLite's own, sorted by name."""
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            " AND name != 'stamp_meta' ORDER BY name"
        )
    ]
    return {table: {"count": connection.execute(f"SELECT COUNT(*) FROM {quote(table)}").fetchone()[0]} for table in tables}


def check_integrity(connection, what):
    (result,) = connection.execute("PRAGMA quick_check").fetchone()
    if result != "ok":
        fail(f"{what} fails SQLite's integrity check: {result}")


def describe(data):
    return ", ".join(f"{table} {entry['count']}" for table, entry in sorted(data.items())) or "no tables"


def snapshot():
    database = env_abspath("STAMP_OUTPUT_DATABASE_PATH")
    snapshot_dir = env_abspath("STAMP_SNAPSHOT_DIR")
    account = env("STAMP_ACCOUNT")
    created = now()
    snapshot_id = f"{account}-{created.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    if not SNAPSHOT_ID.match(snapshot_id):
        fail(f"account name {account!r} makes an invalid snapshot id {snapshot_id!r}")
    target = os.path.join(snapshot_dir, snapshot_id + ".sqlite")
    metadata = os.path.join(snapshot_dir, snapshot_id + ".json")
    if os.path.exists(target) or os.path.exists(metadata):
        fail(f"snapshot {snapshot_id} already exists in {snapshot_dir}: run the snapshot again")
    os.makedirs(snapshot_dir, exist_ok=True)

    source = connect(database, "ro")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".sqlite", dir=snapshot_dir)
    os.close(fd)
    try:
        copy = sqlite3.connect(tmp)
        try:
            # One step copies every page under one read lock: a consistent copy even
            # while the service writes.
            source.backup(copy)
            check_integrity(copy, f"snapshot of {database}")
            data = counts(copy)
        finally:
            copy.close()
        fsync_file(tmp)
        os.replace(tmp, target)
    except sqlite3.Error as exc:
        unlink_quietly(tmp, *(tmp + suffix for suffix in SIDE_FILES))
        fail(f"snapshot of {database} failed: {exc}")
    except BaseException:
        unlink_quietly(tmp, *(tmp + suffix for suffix in SIDE_FILES))
        raise
    finally:
        source.close()

    # The metadata is written last: a snapshot without it is incomplete and is never restored.
    write_json(
        metadata,
        {
            "id": snapshot_id,
            "account": account,
            "environment": os.environ.get("STAMP_ENVIRONMENT", ""),
            "slot": os.environ.get("STAMP_SLOT", ""),
            "version": os.environ.get("STAMP_VERSION", ""),
            "created": created.isoformat().replace("+00:00", "Z"),
            "database": database,
            "file": os.path.basename(target),
            "size": os.path.getsize(target),
            "sha256": sha256_of(target),
            "stats": {"data": data},
        },
    )
    note(f"snapshot {snapshot_id} of {database} written to {target}: {describe(data)}")
    print(snapshot_id, flush=True)


def load_snapshot(snapshot_dir, snapshot_id):
    """The metadata of a complete snapshot, and the path of its database file."""
    if not SNAPSHOT_ID.match(snapshot_id):
        fail(f"invalid snapshot id {snapshot_id!r}: letters, digits, '.', '_', ':' and '-' only, not starting with '.'")
    target = os.path.join(snapshot_dir, snapshot_id + ".sqlite")
    metadata = os.path.join(snapshot_dir, snapshot_id + ".json")
    if not os.path.isfile(target):
        fail(f"snapshot {snapshot_id} not found: no {target}")
    if not os.path.isfile(metadata):
        fail(f"snapshot {snapshot_id} is incomplete: no {metadata}")
    try:
        with open(metadata, encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("stats", {}).get("data"), dict):
            raise ValueError("no sha256 or stats")
    except (OSError, ValueError, AttributeError) as exc:
        fail(f"snapshot {snapshot_id}: unreadable metadata {metadata}: {exc}")
    return meta, target


def restore():
    database = env_abspath("STAMP_OUTPUT_DATABASE_PATH")
    snapshot_dir = env_abspath("STAMP_SNAPSHOT_DIR")
    snapshot_id = env("STAMP_SNAPSHOT_ID")
    meta, source = load_snapshot(snapshot_dir, snapshot_id)
    of = env("STAMP_SNAPSHOT_ACCOUNT")
    if meta.get("account") != of:
        fail(f"snapshot {snapshot_id} was taken of {meta.get('account')!r}, not of {of!r}")
    folder = os.path.dirname(database)
    if not os.path.isdir(folder):
        fail(f"cannot restore snapshot {snapshot_id}: no folder {folder} (is the environment deployed?)")

    # Copy beside the database, verify the copy, then rename it into place.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".sqlite", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        actual = sha256_of(tmp)
        if actual != meta["sha256"]:
            fail(f"snapshot {snapshot_id} is corrupt or was changed: sha256 {actual}, its metadata says {meta['sha256']}")
        copy = sqlite3.connect(tmp, isolation_level=None)
        try:
            check_integrity(copy, f"snapshot {snapshot_id}")
            data = counts(copy)
            if data != meta["stats"]["data"]:
                fail(f"snapshot {snapshot_id} holds {describe(data)}, its metadata says {describe(meta['stats']['data'])}")
            with copy:
                copy.execute("BEGIN IMMEDIATE")
                copy.executemany(
                    "INSERT OR REPLACE INTO stamp_meta (key, value) VALUES (?, ?)",
                    [("restored_from", snapshot_id), ("restored_at", now().isoformat().replace("+00:00", "Z"))],
                )
        finally:
            copy.close()
        if os.path.exists(database):
            os.chmod(tmp, stat.S_IMODE(os.stat(database).st_mode))
        fsync_file(tmp)
        # A journal left by the old database would be rolled back into the new one: remove
        # them first (the account is on standby, nothing writes to it).
        unlink_quietly(*(database + suffix for suffix in SIDE_FILES))
        os.replace(tmp, database)
    except sqlite3.Error as exc:
        unlink_quietly(tmp, *(tmp + suffix for suffix in SIDE_FILES))
        fail(f"restore of snapshot {snapshot_id} onto {database} failed: {exc}")
    except BaseException:
        unlink_quietly(tmp, *(tmp + suffix for suffix in SIDE_FILES))
        raise
    print(f"restored snapshot {snapshot_id} (of {of}) onto {database}: {describe(data)}", flush=True)


def scrub():
    database = env_abspath("STAMP_OUTPUT_DATABASE_PATH")
    connection = connect(database, "rw")
    try:
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            before = counts(connection)
            credentials = [row[0] for row in connection.execute("SELECT id FROM credentials ORDER BY id")]
            connection.executemany(
                "UPDATE credentials SET password_hash = ?, api_key = ? WHERE id = ?",
                [("sha256$" + secrets.token_hex(32), "sk_test_" + secrets.token_hex(16), i) for i in credentials],
            )
            # Names and e-mails are personal data; ids keep the e-mails unique.
            masked = connection.execute(
                "UPDATE customers SET name = printf('Customer %06d', id), email = 'customer' || id || '@scrubbed.invalid'"
            ).rowcount
            connection.execute(
                "INSERT OR REPLACE INTO stamp_meta (key, value) VALUES ('scrubbed_at', ?)",
                (now().isoformat().replace("+00:00", "Z"),),
            )
            after = counts(connection)
            if after != before:
                raise sqlite3.Error(f"row counts changed from {describe(before)} to {describe(after)}; rolled back")
    except sqlite3.Error as exc:
        fail(f"scrub of {database} failed: {exc}")
    finally:
        connection.close()
    print(f"scrubbed {database}: rotated {len(credentials)} credentials, masked {masked} customers; {describe(after)}", flush=True)


def stats():
    database = env_abspath("STAMP_OUTPUT_DATABASE_PATH")
    connection = connect(database, "ro")
    try:
        data = counts(connection)
    except sqlite3.Error as exc:
        fail(f"stats of {database} failed: {exc}")
    finally:
        connection.close()
    json.dump({"data": data}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def read_json_object(path):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(value, dict):
        fail(f"{path} does not hold a JSON object")
    return value


def availability():
    wanted = env("STAMP_AVAILABILITY")
    if wanted not in TRAFFIC:
        fail(f"STAMP_AVAILABILITY must be standby or active, got {wanted!r}")
    traffic = TRAFFIC[wanted]
    env_dir = env_abspath("STAMP_OUTPUT_ENV_DIR")
    if not os.path.isdir(env_dir):
        fail(f"cannot set availability: no environment directory {env_dir} (is the environment deployed?)")
    service_dir = os.path.join(env_dir, "service")
    marker = os.path.join(service_dir, "availability.json")
    current = read_json_object(marker) if os.path.exists(marker) else {}
    if current.get("traffic") == traffic and current.get("since"):
        since = current["since"]
    else:
        since = now().isoformat().replace("+00:00", "Z")
        write_json(marker, {"traffic": traffic, "since": since})
    status_file = os.path.join(service_dir, "status.json")
    if os.path.exists(status_file):
        status = read_json_object(status_file)
        if status.get("traffic") != traffic:
            status["traffic"] = traffic
            write_json(status_file, status)
    print(f"{os.path.basename(env_dir)}: traffic {traffic} since {since}", flush=True)


COMMANDS = {
    "snapshot": snapshot,
    "restore": restore,
    "scrub": scrub,
    "stats": stats,
    "availability": availability,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        fail("usage: data.py " + "|".join(COMMANDS))
    COMMANDS[sys.argv[1]]()


if __name__ == "__main__":
    main()
