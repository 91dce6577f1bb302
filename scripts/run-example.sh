#!/usr/bin/env bash
# Set up and run the daemon on this machine with the shipped example config
# (local Redis and the host), serving http://127.0.0.1:9860/metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server redis-tools
start_redis
start_postgres
cargo build --release --locked
exec ./target/release/redline run --config redline.example.yaml "$@"
