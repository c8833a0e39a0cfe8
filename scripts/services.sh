#!/usr/bin/env bash
# Makes sure the local PostgreSQL, Redis and S3-compatible object store the test suite uses are
# running.
set -euo pipefail

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "error: $name did not come up" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'

# Tests create a fresh database per test on this server; the URL's database must exist.
db_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
psql "$db_url" -Atqc 'select 1' >/dev/null

# S3-compatible object store for the media storage tests (S3_URL=http://127.0.0.1:9000).
# s3s-fs: a small Rust server (on the s3s crate) that keeps objects in a folder and checks the
# SigV4 signature of every request against the one key pair it is started with, so a test signed
# with a wrong secret is refused as it would be by real S3: an honest test of our signer. (moto
# checks signatures only with its IAM emulation switched on and keys made through its IAM API.)
# Built from crates.io once, about 4.5 minutes on 2 cores, then kept in ~/.cargo/bin. Pinned:
# 0.14.1 is the newest that builds on our Rust (rust-toolchain.toml); later ones need 1.96.
# The key pair is the tests' default (media/tests/storage.rs); set both variables to change it.
s3s_fs_version=0.14.1
s3_port=9000
s3_access_key=${S3_ACCESS_KEY_ID:-minigate}
s3_secret_key=${S3_SECRET_ACCESS_KEY:-minigate-test-secret}

s3_answers() { # any HTTP answer (an unsigned request gets 403) means the server is up
  exec 3<>"/dev/tcp/127.0.0.1/$s3_port" || return 1
  printf 'HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  local status
  status=$(timeout 5 head -c 9 <&3)
  exec 3<&-
  [[ $status == HTTP/1.1* ]]
}

if ! s3_answers 2>/dev/null; then
  if ! s3s-fs --version 2>/dev/null | grep -qx "s3s-fs $s3s_fs_version"; then
    echo "installing s3s-fs $s3s_fs_version (once; a few minutes)"
    cargo install "s3s-fs@$s3s_fs_version" --locked --features binary
  fi
  echo "starting s3s-fs"
  mkdir -p /var/lib/minigate-s3 /var/log/minigate-s3
  setsid nohup s3s-fs --host 127.0.0.1 --port "$s3_port" \
    --access-key "$s3_access_key" --secret-key "$s3_secret_key" /var/lib/minigate-s3 \
    >>/var/log/minigate-s3/ci.log 2>&1 </dev/null &
fi
wait_for S3 s3_answers
