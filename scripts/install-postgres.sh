#!/usr/bin/env bash
# Make sure a private PostgreSQL server for Stamp's tests (the `pg` state backend) is running,
# and print its connection string.
#
# Installs Debian's `postgresql` package if no PostgreSQL server is installed, then keeps a
# cluster of its own (not Debian's `main` cluster): data in /tmp/stamp-pg/data, listening on
# 127.0.0.1:55432 only, trust authentication for local TCP connections, a login role `stamp`
# that owns a database `stamp` and may create databases (a test can have one of its own). Started with pg_ctl directly (no systemd, no service). When it
# is already running this only checks that it answers, and prints the connection string.
#
#   scripts/install-postgres.sh          install, start (or confirm), print the connection string
#   scripts/install-postgres.sh --stop   stop the cluster (its data stays)
#
# Environment:
#   STAMP_PG_PORT   TCP port on 127.0.0.1 (default: 55432)
#   STAMP_PG_DIR    folder of the cluster: data/, server.log (default: /tmp/stamp-pg)
#
# Only the connection string is printed on stdout, so
#   export STAMP_TEST_PG="$(scripts/install-postgres.sh)"
# works; progress, and how long the install and the start took, go to stderr.
# As root (CI), the server runs as the `postgres` system user (PostgreSQL refuses root); as
# another user, as that user, and PostgreSQL must already be installed.
set -euo pipefail

port="${STAMP_PG_PORT:-55432}"
base="${STAMP_PG_DIR:-/tmp/stamp-pg}"
host=127.0.0.1
role=stamp
database=stamp
superuser=postgres

log() { printf 'install-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; }

stop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stop) stop=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

case "$port" in '' | *[!0-9]*) die "STAMP_PG_PORT must be a port number, not '$port'" ;; esac
case "$base" in /*) ;; *) base="$PWD/$base" ;; esac
data="$base/data"
server_log="$base/server.log"
conn="postgres://$role@$host:$port/$database?sslmode=disable"

# Milliseconds since the epoch, for timings.
now_ms() { date +%s%3N; }
took() { local ms=$(($(now_ms) - $1)); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

# The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin).
find_bin() {
  local ctl
  ctl="$(printf '%s\n' /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)"
  [ -x "$ctl" ] && [ -x "${ctl%/pg_ctl}/postgres" ] || return 1
  printf '%s\n' "${ctl%/pg_ctl}"
}
major() { local v="${bin#/usr/lib/postgresql/}"; printf '%s\n' "${v%%/*}"; }
version() { "$bin/postgres" --version | sed -E 's/^[^0-9]*([0-9][0-9.]*).*/\1/'; }

# Runs a server program as the user the server runs as.
as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# psql over TCP (trust), quiet, failing on the first error.
sql() {
  local user="$1" db="$2"
  shift 2
  PGCONNECT_TIMEOUT=5 "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U "$user" -d "$db" "$@"
}

ready() { [ "$(sql "$role" "$database" -c 'select rolcreatedb from pg_roles where rolname = current_user' 2>/dev/null)" = t ]; }

# The fast path: a server that already lets the tests' role into their database.
if [ "$stop" -eq 0 ] && bin="$(find_bin)" && ready; then
  log "PostgreSQL is already running on $host:$port"
  printf '%s\n' "$conn"
  exit 0
fi

# Serialise concurrent runs (parallel CI jobs) where flock exists. The server must not inherit
# the lock's descriptor (it would hold the lock for as long as it runs): see `9>&-` below.
mkdir -p -- "$base"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$base/.install-postgres.lock"
  flock -w 300 9 || die "another install-postgres.sh has held $base/.install-postgres.lock for 5 minutes"
fi

if [ "$stop" -eq 1 ]; then
  bin="$(find_bin)" || die "no PostgreSQL server is installed"
  if [ -f "$data/postmaster.pid" ]; then
    as_server_user "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
  else
    log "not running ($data)"
  fi
  exit 0
fi

# 1. The server programs.
if ! bin="$(find_bin)"; then
  [ "$(id -u)" -eq 0 ] || die "no PostgreSQL server under /usr/lib/postgresql: run this as root, or install Debian's 'postgresql' package"
  command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server installed, and no apt-get to install one"
  start=$(now_ms)
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt_log="$(mktemp)"
  apt-get install -y -q --no-install-recommends postgresql >"$apt_log" 2>&1 </dev/null || {
    tail -n 30 -- "$apt_log" >&2
    rm -f -- "$apt_log"
    die "apt-get install postgresql failed"
  }
  rm -f -- "$apt_log"
  bin="$(find_bin)" || die "the postgresql package installed no server under /usr/lib/postgresql"
  log "installed PostgreSQL $(version) in $(took "$start")"
fi
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "there is no 'postgres' user to run the server as (PostgreSQL refuses to run as root)"
  owner=postgres
else
  owner="$(id -un)"
fi

# 2. The cluster: made in data.new and moved into place once configured, so a data folder
# without Stamp's marker in postgresql.conf is someone else's, and is left alone.
marker="# Stamp's test cluster (scripts/install-postgres.sh)"
ours() { grep -qxF "$marker" "$data/postgresql.conf" 2>/dev/null; }
rmdir -- "$data" 2>/dev/null || true # an empty folder is fine
if [ -e "$data" ] && ! ours; then
  die "$data exists but is not a cluster made by this script: remove it, or set STAMP_PG_DIR to another folder"
fi
if ours && [ "$(cat -- "$data/PG_VERSION" 2>/dev/null)" != "$(major)" ]; then
  # Scratch data for tests: a cluster of another major version is made anew.
  log "the cluster in $data is not PostgreSQL $(major): making it anew"
  as_server_user "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 9>&- || true
  rm -rf -- "$data"
fi
if [ ! -e "$data" ]; then
  start=$(now_ms)
  rm -rf -- "$data.new"
  mkdir -p -- "$data.new"
  chown -- "$owner" "$data.new"
  chmod 0700 "$data.new"
  as_server_user "$bin/initdb" -D "$data.new" -U "$superuser" -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null ||
    die "initdb failed for $data.new (as root, the postgres user must be able to reach $base)"
  # Only TCP on the loopback address; no Unix socket (its default folder may not exist).
  cat >>"$data.new/postgresql.conf" <<CONF

$marker
listen_addresses = '$host'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  printf '# Stamp test cluster: trust for TCP from this machine only.\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
    >"$data.new/pg_hba.conf"
  chown -- "$owner" "$data.new/postgresql.conf" "$data.new/pg_hba.conf"
  mv -- "$data.new" "$data"
  log "created a cluster in $data in $(took "$start")"
fi
touch -- "$server_log"
chown -- "$owner" "$server_log"

# 3. Start it (unless it runs already, e.g. without our role yet).
if ! sql "$superuser" postgres -c 'select 1' >/dev/null 2>&1; then
  start=$(now_ms)
  start_server() { as_server_user "$bin/pg_ctl" -D "$data" -l "$server_log" -o "-p $port" -w -t 60 start >/dev/null 9>&-; }
  if ! start_server; then
    # A server that was just killed leaves its postmaster.pid, and its children (or, until it
    # is reaped, the postmaster itself) live on for a moment: try again for a while.
    started=0
    if [ -f "$data/postmaster.pid" ]; then
      for _ in 1 2 3 4 5; do
        log "$data/postmaster.pid is there but no server answers on port $port; starting again in 2s"
        sleep 2
        if start_server; then started=1 && break; fi
      done
    fi
    if [ "$started" -eq 0 ]; then
      tail -n 20 -- "$server_log" >&2 || true
      die "PostgreSQL did not start (log: $server_log)"
    fi
  fi
  log "started PostgreSQL on $host:$port in $(took "$start") (data: $data, log: $server_log)"
fi

# 4. The tests' role and database.
sql "$superuser" postgres <<SQL || die "could not create the role '$role' and the database '$database'"
SELECT 'CREATE ROLE $role LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role')
\gexec
ALTER ROLE $role LOGIN CREATEDB;
SELECT 'CREATE DATABASE $database OWNER $role' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database')
\gexec
SQL
ready || die "the server on $host:$port does not let '$role' (with CREATEDB) into '$database'"
printf '%s\n' "$conn"
