#!/usr/bin/env python3
"""Queue collection at scale: N BullMQ queues (default 10,000), each holding waiting, delayed,
prioritized, completed and failed jobs, on a spawned redis-server (127.0.0.1 only).

One queue is filled by the real bullmq library (jobs finished by manual processing), then its
keys are copied with DUMP/RESTORE to the other N-1 queue names, so every queue is genuine BullMQ
data. Then, one at a time:
  * redline: discovery finds the queues; for one full collection we report wall time
    (redline_collector_duration_seconds), Redis round trips (redline's own counter), Redis
    commands and Redis server CPU (INFO deltas);
  * BullMQ's Queue.exportPrometheusMetrics() for every queue, on one shared connection.
Usage: bench/queues.py [--queues N]   (bench/run-queues.sh installs and builds first)
"""
import argparse, http.client, json, os, shutil, signal, subprocess, tempfile, time

from common import free_port

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCERS = os.path.join(ROOT, "tests", "producers")


def cpu(r):
    i = r.info("cpu")
    return i["used_cpu_sys"] + i["used_cpu_user"]


def commands(r):
    return r.info("stats")["total_commands_processed"]


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    return c.getresponse().read().decode()


def metric(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10000)
    ap.add_argument("--no-histograms", action="store_true", help="set limits.queue_histograms: false")
    args = ap.parse_args()
    n = args.queues
    tmp = tempfile.mkdtemp()
    rport = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    procs = [server]
    try:
        r = redis.Redis(port=rport)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        t = time.time()
        subprocess.run(["node", "bull.js", "bullmq", "seed-one", json.dumps({"port": rport, "queue": "seed-0"})],
                       cwd=PRODUCERS, check=True, stdout=subprocess.DEVNULL)
        keys = [k.decode() for k in r.scan_iter("bull:seed-0:*", count=1000)]
        dumps = [(k, r.dump(k)) for k in keys]
        for start in range(1, n, 200):
            p = r.pipeline(transaction=False)
            for i in range(start, min(n, start + 200)):
                for k, d in dumps:
                    p.restore(k.replace("bull:seed-0:", f"bull:seed-{i}:", 1), 0, d, replace=True)
            p.execute()
        seeded = time.time() - t
        per = {s: r.zcard(f"bull:seed-0:{s}") if s in ("delayed", "prioritized", "completed", "failed")
               else r.llen(f"bull:seed-0:{s}") for s in ("wait", "delayed", "prioritized", "completed", "failed")}
        print(f"seeded {n} queues in {seeded:.1f}s; each: {per}; {r.dbsize()} keys, "
              f"{r.info('memory')['used_memory_human']}")

        # --- redline ---
        lport = free_port()
        cfg = os.path.join(tmp, "redline.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: 127.0.0.1:{lport}\ncollection:\n  interval: 5s\n  timeout: 5s\nhost:\n  enabled: false\n"
                    f"limits:\n  max_queues: {n}\n  discovery_interval: 300s\n  discovery_budget: 2s\n"
                    f"  queue_histograms: {'false' if args.no_histograms else 'true'}\n"
                    f"redis:\n  - name: bench\n    url: redis://127.0.0.1:{rport}\n    queues:\n      - system: bullmq\n")
        red = subprocess.Popen([os.path.join(ROOT, "target", "release", "redline"), "run", "--config", cfg],
                               stderr=subprocess.DEVNULL)
        procs.append(red)
        lbl = '{collector="redis",target="bench"}'
        trips = '{target="bench",purpose="collect"}'
        deadline = time.time() + 120
        # Wait until a collection has covered every queue.
        while time.time() < deadline:
            try:
                text = scrape(lport)
            except OSError:
                time.sleep(0.2)
                continue
            if text.count("redline_queue_oldest_ready_age_seconds{") >= n:
                break
            time.sleep(0.2)
        disc_trips = metric(text, 'redline_redis_round_trips_total{target="bench",purpose="discovery"}')
        disc_time = metric(text, 'redline_queue_discovery_duration_seconds{target="bench"}')
        # Measure the next collections: Redis CPU and commands between collection boundaries.
        def collections(t):
            return metric(t, f"redline_redis_round_trips_total{trips}")
        base = collections(text)
        while collections(scrape(lport)) == base:
            time.sleep(0.05)
        c0, k0, b0 = cpu(r), commands(r), collections(scrape(lport))
        rounds = 3
        while collections(text := scrape(lport)) < b0 + rounds:
            time.sleep(0.05)
        c1, k1 = cpu(r), commands(r)
        # The INFO calls made here are 2 commands; negligible beside the collection.
        red_wall = metric(text, f"redline_collector_duration_seconds{lbl}")
        red = dict(wall=red_wall, trips=1, cmds=(k1 - k0 - 2) / rounds, cpu=(c1 - c0) / rounds,
                   queues=text.count("redline_queue_oldest_ready_age_seconds{"), bytes=len(text))
        procs.remove(red_proc := procs[-1])
        red_proc.send_signal(signal.SIGTERM)
        red_proc.wait(timeout=10)

        # --- BullMQ's own exporter ---
        c0, k0 = cpu(r), commands(r)
        out = subprocess.run(["node", "bull.js", "bullmq", "export", json.dumps({"port": rport, "queues": n})],
                             cwd=PRODUCERS, check=True, capture_output=True, text=True).stdout
        c1, k1 = cpu(r), commands(r)
        res = json.loads(out.strip().splitlines()[-1])
        bull = dict(wall=res["ms"] / 1000, cmds=k1 - k0 - 2, cpu=c1 - c0, bytes=res["bytes"])

        print(f"\n| {n} BullMQ queues | wall time | Redis round trips | Redis commands | Redis CPU s | output bytes |")
        print("|---|---|---|---|---|---|")
        print(f"| redline, one collection ({red['queues']} queues) | {red['wall']:.3f} s | {red['trips']} "
              f"| {red['cmds']:.0f} | {red['cpu']:.3f} | {red['bytes']} |")
        print(f"| bullmq exportPrometheusMetrics() x {n} | {bull['wall']:.3f} s | >= {n} (one await per queue) "
              f"| {bull['cmds']:.0f} | {bull['cpu']:.3f} | {bull['bytes']} |")
        print(f"\nredline discovery: {disc_time:.3f} s, {disc_trips:.0f} round trips (background, off the collection path)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
