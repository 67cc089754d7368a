#!/usr/bin/env bash
# Start the servers the test suite needs, on loopback only, and write their addresses to
# $SEA_HOME/test-services.env. Safe to run again: it reuses what is already running.
#
# PostgreSQL 15: a throwaway cluster under $SEA_HOME/test-services/postgres, listening on 127.0.0.1 only,
# owned by the `postgres` system user (PostgreSQL refuses to run as root). Exports SEA_TEST_POSTGRES_URI.
set -euo pipefail
: "${SEA_HOME:=$PWD/.sea}"
mkdir -p "$SEA_HOME"
SEA_HOME="$(cd "$SEA_HOME" && pwd)"
env_file="$SEA_HOME/test-services.env"
tmp_env="$(mktemp)"
trap 'rm -f "$tmp_env"' EXIT

apt_updated=0
apt_update_once() { if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null; apt_updated=1; fi; }

# --- PostgreSQL ---------------------------------------------------------------------------------------
pg_bin="${SEA_PG_BIN:-/usr/lib/postgresql/15/bin}"
# The cluster lives outside SEA_HOME, under /tmp: the `postgres` user must be able to reach it, and a clone
# under a root-only folder (as CI's may be) would not let it.
pg_dir="${SEA_PG_DIR:-/tmp/sea-test-postgres-$(printf %s "$SEA_HOME" | sha256sum | cut -c1-12)}"
pg_data="$pg_dir/data"
pg_user="postgres"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }

start_postgres() {
  if [ ! -x "$pg_bin/pg_ctl" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing PostgreSQL 15 with apt-get ..."
      apt_update_once
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >/dev/null
    else
      echo "PostgreSQL 15 is not installed ($pg_bin/pg_ctl missing); install postgresql-15." >&2
      return 1
    fi
  fi
  if [ "$(id -u)" = 0 ]; then
    id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home "$pg_user"
    mkdir -p "$pg_dir"
    chown "$pg_user" "$pg_dir"
    if ! runuser -u "$pg_user" -- test -w "$pg_dir"; then
      echo "the $pg_user user cannot reach $pg_dir; set SEA_PG_DIR to a folder it can reach (e.g. under /tmp)." >&2
      return 1
    fi
  else
    mkdir -p "$pg_dir"
  fi

  if [ ! -f "$pg_data/PG_VERSION" ]; then
    # A fresh cluster: random password, scram auth, loopback only, socket inside the cluster folder.
    python3 -c 'import secrets; print(secrets.token_hex(16))' > "$pg_dir/password"
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
      > "$pg_dir/port"
    chmod 600 "$pg_dir/password"
    chown "$pg_user" "$pg_dir/password" "$pg_dir/port" 2>/dev/null || true
    as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=scram-sha-256 \
      --pwfile="$pg_dir/password" -E UTF8 >"$pg_dir/initdb.log" 2>&1
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $(cat "$pg_dir/port")"
      echo "unix_socket_directories = '$pg_dir'"
      echo "fsync = off"                       # a throwaway test cluster: speed over crash safety
      echo "synchronous_commit = off"
      echo "max_connections = 50"
    } >> "$pg_data/postgresql.conf"
  fi

  local port password
  port="$(cat "$pg_dir/port")"
  password="$(cat "$pg_dir/password")"
  if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/server.log" -w -t 30 start >/dev/null
  fi
  export PGPASSWORD="$password"
  if ! psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='sea_test'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE sea_test" >/dev/null
  fi
  echo "SEA_TEST_POSTGRES_URI=postgresql://postgres:$password@127.0.0.1:$port/sea_test" >> "$tmp_env"
  echo "postgres: 127.0.0.1:$port (data in $pg_data; stop with: runuser -u $pg_user -- $pg_bin/pg_ctl -D $pg_data stop)"
}

start_postgres

# --- Chromium (the UI's real-browser test) --------------------------------------------------------------
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver with apt-get ..."
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
  else
    echo "chromium is missing: install chromium and chromium-driver, or the browser test is skipped." >&2
  fi
fi

cp "$tmp_env" "$env_file"
echo "test services ready ($env_file)"
