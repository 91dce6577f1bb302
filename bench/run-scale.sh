#!/usr/bin/env bash
# Issue 12 benchmark (bench/scale.py): installs what it needs (idempotent), builds redline
# (release) and the app client, then runs. Arguments go to bench/scale.py, e.g.
#   bench/run-scale.sh --sections app --queues 10000 --seconds 60
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
apt_install redis-server redis-tools wrk prometheus-redis-exporter ruby-sidekiq
command -v npm >/dev/null || apt_install nodejs npm
(cd tests/producers && { [ -d node_modules/bullmq ] || npm install --no-audit --no-fund; })
python3 -c "import redis, rq, celery" 2>/dev/null || python3 -m pip install -q -r tests/producers/requirements.txt
cargo build --release --locked
mkdir -p target/bench
if [ ! -x target/bench/appclient ] || [ bench/appclient.rs -nt target/bench/appclient ]; then
  rustc -O --edition 2021 bench/appclient.rs -o target/bench/appclient
fi
exec python3 bench/scale.py "$@"
