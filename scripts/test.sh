#!/usr/bin/env bash
# The whole test suite. With no servers it runs on the embedded defaults (SQLite, in-process
# limits); with DATABASE_URL (and REDIS_URL) set, every backend test also runs on PostgreSQL
# (and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace "$@"
