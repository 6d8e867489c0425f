#!/usr/bin/env bash
# Autogenerate an Alembic revision against a scratch database on a local PostgreSQL server.
# Usage: scripts/new-migration.sh "message" [REV_ID]
set -euo pipefail
cd "$(dirname "$0")/.."
server="${CHAINRISK_SCRATCH_SERVER:-postgresql://postgres@127.0.0.1:5432}"
scratch="chainrisk_migration_scratch"
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $scratch" -c "CREATE DATABASE $scratch"
export CHAINRISK_DATABASE_URL="$server/$scratch"
.venv/bin/alembic upgrade head
.venv/bin/alembic revision --autogenerate -m "$1" ${2:+--rev-id "$2"}
.venv/bin/ruff check -q --fix migrations/versions
.venv/bin/ruff format -q migrations/versions
psql "$server/postgres" -qc "DROP DATABASE $scratch"
