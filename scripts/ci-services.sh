#!/usr/bin/env bash
# Installs and starts the services the test suites use, from Debian's packages. Idempotent: safe to run
# again on a machine where everything is already installed and running. Also installs strace, with which
# test/durability.test.ts checks the order of fsync and socket writes, clang and lld (WebAssembly from C),
# and Python with torch (CPU), numpy,
# mpmath and setuptools for python/ and the reference scripts.
#
# After it: PostgreSQL on 127.0.0.1:5432 with role tracemark / password tracemark owning the database
# tracemark_test, and Redis on 127.0.0.1:6379. Those are the defaults the gateway's tests use
# (TRACEMARK_TEST_DATABASE_URL, TRACEMARK_TEST_REDIS_URL); this script exports nothing.
set -uo pipefail

status=0
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v strace >/dev/null 2>&1 || need+=(strace)
# clang and wasm-ld: the tokenizers' test that its WebAssembly module is the compiled C source.
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v wasm-ld >/dev/null 2>&1 || need+=(lld)
# Python: the reference implementations, the peers' vector generators and the python/ package's tests
# (a small torch model is built in the tests; nothing is downloaded).
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need+=(python3-torch)
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need+=(python3-numpy)
/usr/bin/python3 -c 'import mpmath' >/dev/null 2>&1 || need+=(python3-mpmath)
/usr/bin/python3 -c 'import setuptools' >/dev/null 2>&1 || need+=(python3-setuptools)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root apt-get update -qq >/dev/null 2>&1
  if ! as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    echo "apt-get install ${need[*]} failed" >&2
    status=1
  fi
fi

# PostgreSQL: start the packaged cluster (creating one if the package left none), then the test role and db.
if command -v pg_lsclusters >/dev/null 2>&1; then
  if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
    as_root pg_createcluster "$version" main >/dev/null
  fi
  read -r pg_version pg_cluster pg_port pg_status _ < <(pg_lsclusters -h | head -1)
  if [ "$pg_status" != "online" ]; then
    as_root pg_ctlcluster "$pg_version" "$pg_cluster" start || status=1
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 1
  done
  psql_admin() { (cd / && as_root runuser -u postgres -- psql -p "$pg_port" -v ON_ERROR_STOP=1 -qtA "$@"); }
  if pg_isready -q -h 127.0.0.1 -p "$pg_port"; then
    psql_admin -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tracemark') THEN
          CREATE ROLE tracemark LOGIN PASSWORD 'tracemark';
        ELSE
          ALTER ROLE tracemark LOGIN PASSWORD 'tracemark';
        END IF;
      END \$\$;" || status=1
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'tracemark_test'")" != "1" ]; then
      psql_admin -c "CREATE DATABASE tracemark_test OWNER tracemark" || status=1
    fi
    echo "postgresql ready on 127.0.0.1:$pg_port (database tracemark_test)"
  else
    echo "postgresql did not start" >&2
    status=1
  fi
else
  echo "postgresql is not installed" >&2
  status=1
fi

# Redis: the packaged server, started directly (CI machines have no init system running).
if command -v redis-server >/dev/null 2>&1; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null || status=1
  fi
  for _ in $(seq 1 30); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "redis ready on 127.0.0.1:6379"
  else
    echo "redis did not start" >&2
    status=1
  fi
else
  echo "redis-server is not installed" >&2
  status=1
fi

[ "$status" -eq 0 ] && echo "services ready"
exit "$status"
