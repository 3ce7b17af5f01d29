#!/usr/bin/env bash
# Make Debian's PostgreSQL available for the test suite: install it when missing, start a
# cluster, and create the `decodelab` role (allowed to create the test databases).
# Prints the DATABASE_URL to use. Root, or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-apt.sh postgresql >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PORT="${DECODELAB_PG_PORT:-5432}"
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  $SUDO pg_createcluster "$version" main --port "$PORT" >&2
fi
cluster_port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 50); do
  pg_isready -q -h 127.0.0.1 -p "$cluster_port" && break
  sleep 0.2
done
psql_as_postgres() { $SUDO runuser -u postgres -- psql -p "$cluster_port" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_as_postgres -c "select 1 from pg_roles where rolname='decodelab'")" != "1" ]; then
  psql_as_postgres -c "create role decodelab login createdb password 'decodelab-test'" >&2
fi
if [ "$(psql_as_postgres -c "select 1 from pg_database where datname='decodelab'")" != "1" ]; then
  psql_as_postgres -c "create database decodelab owner decodelab" >&2
fi
echo "postgres://decodelab:decodelab-test@127.0.0.1:${cluster_port}/decodelab"
