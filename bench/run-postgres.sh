#!/usr/bin/env bash
# Installs Debian's prometheus-postgres-exporter, builds redline, runs bench/postgres.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install prometheus-postgres-exporter postgresql-contrib
cargo build --release --locked
python3 bench/postgres.py "$@"
