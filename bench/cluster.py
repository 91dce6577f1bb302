#!/usr/bin/env python3
"""Redis Cluster collection: the same N BullMQ queues (default 300) on one redis-server and on a
3-primary Redis Cluster (spawned on free local ports, temp dirs, 127.0.0.1 only).

One queue is filled by the real bullmq library through ioredis' Cluster client (prefix
`{t0}`), then its keys are copied with DUMP/RESTORE to prefixes `{t1}` … `{tN-1}`, whose hash
tags spread the queues over the three shards. redline collects each setup every 2 s; we report
the collection wall time (redline_collector_duration_seconds, median of 5) and the round trips
per node per collection from redline's own counters (server read, queue pipeline, and the one
topology read per collection that goes to a single node).
Usage: bench/cluster.py [--queues N]   (bench/run-cluster.sh installs and builds first)
"""
import argparse, http.client, json, os, shutil, signal, statistics, subprocess, tempfile, time

from common import free_port

import redis
from redis.cluster import RedisCluster, ClusterNode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCERS = os.path.join(ROOT, "tests", "producers")


def server(tmp, name, *extra):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d, *extra], stdout=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    for _ in range(200):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    return p, port


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    return c.getresponse().read().decode()


def samples(text, prefix):
    """{labels: value} of every sample whose line starts with prefix."""
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            lbl, v = line.rsplit(" ", 1)
            out[lbl] = float(v)
    return out


def run_redline(tmp, name, target_yaml, n):
    lport = free_port()
    cfg = os.path.join(tmp, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"listen: 127.0.0.1:{lport}\ncollection:\n  interval: 2s\n  timeout: 2s\nhost:\n  enabled: false\n"
                f"limits:\n  max_queues: {n}\n  discovery_interval: 300s\n  discovery_budget: 2s\n"
                f"redis:\n  - name: bench\n{target_yaml}    queues:\n      - system: bullmq\n        prefix: \"{{t0}}\"\n")
        # Explicit prefixes: discovery scans per prefix; N sources would each scan. Name them all.
    with open(cfg) as f:
        text = f.read()
    text = text.replace('      - system: bullmq\n        prefix: "{t0}"\n',
                        "".join(f'      - system: bullmq\n        prefix: "{{t{i}}}"\n        names: [q]\n'
                                for i in range(n)))
    with open(cfg, "w") as f:
        f.write(text)
    red = subprocess.Popen([os.path.join(ROOT, "target", "release", "redline"), "run", "--config", cfg],
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                t = scrape(lport)
                if t.count('redline_queue_jobs{target="bench",system="bullmq",prefix="{t') >= n * 6:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        walls, first, last = [], None, None
        seen = None
        while len(walls) < 5:
            t = scrape(lport)
            ts = samples(t, 'redline_collector_last_success_timestamp_seconds{collector="redis",target="bench"}')
            stamp = next(iter(ts.values()), None)
            if stamp != seen:
                seen = stamp
                trips = samples(t, "redline_redis_round_trips_total{")
                refresh = samples(t, 'redline_redis_topology_refreshes_total{target="bench",outcome="ok"}')
                snap = (trips, sum(refresh.values()))
                if first is None:
                    first = snap
                else:
                    walls.append(next(iter(samples(t, 'redline_collector_duration_seconds{collector="redis",target="bench"}').values())))
                last = snap
            time.sleep(0.1)
        rounds = len(walls)
        per_node = {}
        for lbl, v in last[0].items():
            node = lbl.split('node="')[1].split('"')[0] if 'node="' in lbl else "server"
            purpose = lbl.split('purpose="')[1].split('"')[0]
            if purpose == "discovery":
                continue
            per_node.setdefault(node, 0.0)
            per_node[node] += (v - first[0].get(lbl, 0.0)) / rounds
        topo = (last[1] - first[1]) / rounds
        queues = t.count('redline_queue_oldest_ready_age_seconds{target="bench"')
        return statistics.median(walls), per_node, topo, queues
    finally:
        red.send_signal(signal.SIGTERM)
        red.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=300)
    args = ap.parse_args()
    n = args.queues
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        # --- a 3-primary cluster ---
        ports = []
        for i in range(3):
            p, port = server(tmp, f"c{i}", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000")
            procs.append(p)
            ports.append(port)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL)
        rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports])
        for _ in range(100):
            if all(redis.Redis(port=p).cluster("info")["cluster_state"] == "ok" for p in ports):
                break
            time.sleep(0.1)
        subprocess.run(["node", "bull.js", "bullmq", "seed-one", json.dumps({"cluster": ports, "queue": "q", "prefix": "{t0}"})],
                       cwd=PRODUCERS, check=True, stdout=subprocess.DEVNULL)
        keys = []
        for p in ports:
            keys += [k.decode() for k in redis.Redis(port=p).scan_iter("{t0}:q:*", count=1000)]
        dumps = [(k, rc.dump(k)) for k in keys]
        # --- one server with the same queues ---
        sp, sport = server(tmp, "single")
        procs.append(sp)
        single = redis.Redis(port=sport)
        for i in range(n):
            pipe = rc.pipeline()
            sp_pipe = single.pipeline(transaction=False)
            for k, d in dumps:
                nk = k.replace("{t0}:", f"{{t{i}}}:", 1)
                if i:
                    pipe.restore(nk, 0, d, replace=True)
                sp_pipe.restore(nk, 0, d, replace=True)
            pipe.execute()
            sp_pipe.execute()
        spread = [redis.Redis(port=p).dbsize() for p in ports]
        print(f"{n} BullMQ queues, {len(keys)} keys each; keys per cluster node: {spread}")

        rows = []
        wall, per_node, topo, q = run_redline(tmp, "single", f"    url: redis://127.0.0.1:{sport}\n", n)
        rows.append(("one redis-server", q, wall, per_node, 0))
        wall, per_node, topo, q = run_redline(
            tmp, "cluster", f"    cluster: true\n    url: redis://127.0.0.1:{ports[0]}\n", n)
        rows.append(("3-primary Redis Cluster", q, wall, per_node, topo))
        print("\n| setup | queues read | collection wall time (median) | round trips per node per collection |")
        print("|---|---|---|---|")
        for name, q, wall, per_node, topo in rows:
            trips = ", ".join(f"{v:.0f}" for _, v in sorted(per_node.items()))
            extra = f" (+{topo:.0f} topology read on one node)" if topo else ""
            print(f"| {name} | {q} | {wall * 1000:.1f} ms | {trips}{extra} |")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
