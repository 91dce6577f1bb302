#!/usr/bin/env python3
"""Side-by-side benchmark: redline vs Debian's prometheus-redis-exporter and
prometheus-node-exporter against one spawned redis-server (127.0.0.1 only).

Prints, per exporter: scrape latency p50/p99 (sequential and with 50 concurrent scrapers, via
wrk), RSS after load, CPU time per scrape, and Redis commands / connections per scrape (from
INFO stats deltas). Usage: bench/compare.py [--scrapes N] [--seconds S] [--markdown]
Run via bench/run.sh, which installs the peers and builds redline first.
"""
import argparse, http.client, os, re, shutil, signal, subprocess, tempfile, time

from common import free_port, rss_mib, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def redis_stats(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats"], capture_output=True, text=True).stdout
    d = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
    # Subtract the INFO call itself and its connection.
    return int(d["total_commands_processed"]), int(d["total_connections_received"])


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(port, n):
    lat = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/metrics")
        r = c.getresponse()
        r.read()
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3


def wrk(port, seconds, conns):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True, text=True).stdout
    def ms(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, u = float(m.group(1)), m.group(2)
        return v / 1e3 if u == "us" else v * 1e3 if u == "s" else v
    reqs = re.search(r"(\d+) requests in", out)
    return ms(50), ms(99), int(reqs.group(1)) if reqs else 0


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()


def measure(name, proc, port, redis_port, args):
    """Measures one exporter, then stops it so it cannot disturb the next one's figures."""
    try:
        return _measure(name, proc.pid, port, redis_port, args)
    finally:
        stop(proc)


def _measure(name, pid, port, redis_port, args):
    wait_http(port)
    time.sleep(2.5)  # let interval-based collectors settle
    # Idle window: what the exporter costs Redis with nobody scraping (redline: 5 collections).
    idle0, _ = redis_stats(redis_port)
    time.sleep(5)
    idle1, _ = redis_stats(redis_port)
    idle_per_s = max(0, idle1 - idle0 - 1) / 5
    cmd0, conn0 = redis_stats(redis_port)
    cpu0 = proc_cpu_seconds(pid)
    p50, p99 = sequential(port, args.scrapes)
    cpu1 = proc_cpu_seconds(pid)
    cmd1, conn1 = redis_stats(redis_port)
    c50, c99, creqs = wrk(port, args.seconds, 50)
    rss = rss_mib(pid)
    # Each INFO stats call is itself one command and one connection.
    cmds = max(0, cmd1 - cmd0 - 1) / args.scrapes
    conns = max(0, conn1 - conn0 - 1) / args.scrapes
    cpu_ms = (cpu1 - cpu0) * 1e3 / args.scrapes
    return dict(name=name, p50=p50, p99=p99, c50=c50, c99=c99, creqs=creqs, rss=rss, cpu=cpu_ms,
                cmds=cmds, conns=conns, idle=idle_per_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    for tool in ["redis-server", "redis-cli", "wrk", "prometheus-redis-exporter", "prometheus-node-exporter"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run bench/run.sh")
    binary = os.path.join(ROOT, "target", "release", "redline")
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL))
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        # Some data so INFO keyspace and commandstats are not empty.
        subprocess.run(["redis-cli", "-p", str(rport), "DEBUG", "POPULATE", "10000"], capture_output=True)
        results = []

        lport = free_port()
        cfg = os.path.join(tmp, "redline.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: 127.0.0.1:{lport}\ncollection:\n  interval: 1s\n  timeout: 900ms\n"
                    f"host:\n  enabled: true\nredis:\n  - name: bench\n    url: redis://127.0.0.1:{rport}\n")
        p = subprocess.Popen([binary, "run", "--config", cfg], stderr=subprocess.DEVNULL)
        procs.append(p)
        results.append(measure("redline (redis+host)", p, lport, rport, args))

        eport = free_port()
        p = subprocess.Popen(["prometheus-redis-exporter", "-redis.addr", f"redis://127.0.0.1:{rport}",
                              "-web.listen-address", f"127.0.0.1:{eport}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        results.append(measure("redis_exporter", p, eport, rport, args))

        nport = free_port()
        p = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{nport}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        results.append(measure("node_exporter", p, nport, rport, args))
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        shutil.rmtree(tmp, ignore_errors=True)

    hdr = ["exporter", "p50 ms", "p99 ms", "p50 ms @50", "p99 ms @50", "scrapes @50",
           "RSS MiB", "CPU ms/scrape", "Redis cmds/scrape", "Redis conns/scrape", "Redis cmds/s idle"]
    rows = [[r["name"], f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['c50']:.2f}", f"{r['c99']:.2f}",
             str(r["creqs"]), f"{r['rss']:.1f}", f"{r['cpu']:.3f}", f"{r['cmds']:.2f}", f"{r['conns']:.3f}", f"{r['idle']:.1f}"]
            for r in results]
    print(f"{args.scrapes} sequential scrapes; then wrk -c50 for {args.seconds}s; "
          f"{os.cpu_count()} CPUs; redline collects every 1s, the others on every scrape")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
