#!/usr/bin/env bash
# Installs what the cluster benchmark needs, builds redline, runs bench/cluster.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server redis-tools
(cd tests/producers && { [ -d node_modules/bullmq ] || npm install --no-audit --no-fund; })
python3 -c "import redis.cluster" 2>/dev/null || python3 -m pip install -q -r tests/producers/requirements.txt
cargo build --release --locked
python3 bench/cluster.py "$@"
