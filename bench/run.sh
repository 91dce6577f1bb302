#!/usr/bin/env bash
# Installs the peer exporters and wrk (Debian), builds redline, prints the comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server redis-tools wrk prometheus-redis-exporter prometheus-node-exporter
cargo build --release --locked
python3 bench/compare.py "$@"
