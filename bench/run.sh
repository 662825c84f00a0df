#!/usr/bin/env bash
# `make bench` / `make bench-compare`: install what the benchmark needs, then run it.
#   bash bench/run.sh [--compare] [--smoke] [--no-profile]
set -euo pipefail
cd "$(dirname "$0")/.."

compare=0
for arg in "$@"; do [ "$arg" = "--compare" ] && compare=1; done

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt_install wrk; }
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package)"; apt_install nginx-light || apt_install nginx
fi
bash scripts/ensure-services.sh  # Redis on 127.0.0.1:6379

# matplotlib (the plot) and py-spy (the profile) live in their own small venv, not in the project's.
if [ ! -x bench/.tools-venv/bin/py-spy ] || [ ! -x bench/.tools-venv/bin/python ]; then
  echo "creating bench/.tools-venv (matplotlib, py-spy)"
  python3 -m venv bench/.tools-venv
  bench/.tools-venv/bin/pip install -q --disable-pip-version-check "matplotlib>=3.9" "py-spy>=0.4"
fi
# The venv is brought up to date whenever bench/litellm-requirements.txt changed since it was installed.
if [ "$compare" = 1 ] && ! cmp -s bench/litellm-requirements.txt bench/.litellm-venv/requirements.installed; then
  echo "installing bench/.litellm-venv (LiteLLM with its proxy dependencies, bench/litellm-requirements.txt)"
  [ -x bench/.litellm-venv/bin/python ] || python3 -m venv bench/.litellm-venv
  bench/.litellm-venv/bin/pip install -q --disable-pip-version-check -r bench/litellm-requirements.txt
  cp bench/litellm-requirements.txt bench/.litellm-venv/requirements.installed
fi

# 1,000 held streams need ~3,000 descriptors across client, gateway and upstream.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec .venv/bin/python -m bench "$@"
