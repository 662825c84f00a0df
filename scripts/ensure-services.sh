#!/usr/bin/env bash
# Make sure what the test suite talks to is present: a Redis on 127.0.0.1:6379, a PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth, database `test`) and the nginx binary.
set -euo pipefail

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
postgres_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/llm-api-redis.log
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "redis did not start" >&2; exit 1; }
fi

if ! postgres_up; then
  if ! compgen -G "/etc/postgresql/*/main" >/dev/null; then
    echo "installing PostgreSQL (Debian package)"
    apt_install postgresql
  fi
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  conf="/etc/postgresql/${version}/main"
  # Tests connect over TCP as postgres without a password (a development machine only).
  if ! grep -q "llm-api tests" "${conf}/pg_hba.conf"; then
    { echo "# llm-api tests: trust on loopback"; echo "host all all 127.0.0.1/32 trust"; \
      echo "host all all ::1/128 trust"; cat "${conf}/pg_hba.conf"; } > "${conf}/pg_hba.conf.new"
    mv "${conf}/pg_hba.conf.new" "${conf}/pg_hba.conf"
    chown postgres:postgres "${conf}/pg_hba.conf"
  fi
  echo "starting PostgreSQL ${version} on 127.0.0.1:5432"
  pg_ctlcluster --skip-systemctl-redirect "${version}" main start
  for _ in $(seq 1 100); do postgres_up && break; sleep 0.1; done
  postgres_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc "select 1" >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null
fi

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package)"
  apt_install nginx-light || apt_install nginx
fi
