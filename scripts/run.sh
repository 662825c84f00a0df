#!/usr/bin/env bash
# `make run`: start llm-api under gunicorn. Without provider keys, the built-in emulator stands in for
# Anthropic and OpenAI on loopback, so the first run needs no account and no network.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export BIND="${BIND:-0.0.0.0:8000}"
port="${BIND##*:}"
emulator_pid=""
gunicorn_pid=""

cleanup() {
  [ -n "$gunicorn_pid" ] && kill -TERM "$gunicorn_pid" 2>/dev/null && wait "$gunicorn_pid" 2>/dev/null
  [ -n "$emulator_pid" ] && kill -TERM "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${ANTHROPIC_API_KEY:-}" ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  emulator_port="${EMULATOR_PORT:-8900}"
  "$BIN/python" -m llm_api.emulator --host 127.0.0.1 --port "$emulator_port" &
  emulator_pid=$!
  for _ in $(seq 1 100); do
    "$BIN/python" - "$emulator_port" <<'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_emulator/health", timeout=0.5)
except Exception:
    sys.exit(1)
PY
    sleep 0.1
  done
  export ANTHROPIC_API_KEY=emulator ANTHROPIC_BASE_URL="http://127.0.0.1:${emulator_port}"
  export OPENAI_API_KEY=emulator OPENAI_BASE_URL="http://127.0.0.1:${emulator_port}/v1"
  echo "No provider keys set: using the built-in emulator on 127.0.0.1:${emulator_port} for both providers."
fi

if [ -z "${API_KEYS:-}" ] && [ -z "${API_KEY_HASHES:-}" ]; then
  API_KEYS="dev-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))')"
  export API_KEYS
  echo "No API_KEYS set: generated a client key for this run."
fi
key="${API_KEYS%%,*}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"

# Managed keys and the usage ledger: a local SQLite file unless DATABASE_URL names a PostgreSQL.
if [ -z "${DATABASE_URL:-}" ]; then
  mkdir -p data
  export DATABASE_URL="sqlite+aiosqlite:///./data/llm_api.db"
  echo "No DATABASE_URL set: keys and usage go to ./data/llm_api.db (SQLite)."
fi

cat <<MSG

llm-api is starting on http://localhost:${port}. Try:

  curl -s http://localhost:${port}/v1/chat -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Say hello"}]}'

  curl -N http://localhost:${port}/v1/chat -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' -d '{"stream":true,"messages":[{"role":"user","content":"Say hello"}]}'

MSG

"$BIN/gunicorn" -c gunicorn.conf.py llm_api.main:app &
gunicorn_pid=$!
wait "$gunicorn_pid"
