#!/usr/bin/env python3
"""Scrape cost of redline's /metrics, for one or more builds side by side (loopback only).

For each binary and each config (plain: one Redis + host; streams: one Redis with N stream queues,
a large exposition), prints: body size (plain and gzipped as served), scrape latency p50/p99/max
and CPU per scrape over sequential scrapes of a mostly unchanged snapshot (what HA Prometheus
pairs, several scrapers or a scrape interval shorter than the collection interval see), with and
without `Accept-Encoding: gzip`, and the latency of the first scrape after each new snapshot.

Usage: bench/scrape.py [--binary LABEL=PATH ...] [--scrapes N] [--streams N] [--fresh N]
Default binary: target/release/redline. To compare with an older build, build it elsewhere and
pass both, e.g. --binary before=/tmp/old/redline --binary after=target/release/redline.
"""
import argparse, gzip, http.client, os, shutil, signal, subprocess, tempfile, time

from common import free_port, rss_mib, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(conn, gz):
    headers = {"Accept-Encoding": "gzip"} if gz else {}
    t = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    return dt, body, r.getheader("Content-Encoding") == "gzip"


def pct(sorted_lat, p):
    return sorted_lat[min(len(sorted_lat) - 1, int(len(sorted_lat) * p))] * 1e3


def sequential(pid, port, n, gz):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    scrape(conn, gz)  # warm: the snapshot's body exists afterwards
    cpu0 = proc_cpu_seconds(pid)
    lat = []
    size, zipped = 0, False
    for _ in range(n):
        dt, body, zipped = scrape(conn, gz)
        lat.append(dt)
        size = len(body)
    cpu1 = proc_cpu_seconds(pid)
    lat.sort()
    return dict(p50=pct(lat, 0.5), p99=pct(lat, 0.99), max=lat[-1] * 1e3,
                cpu_ms=(cpu1 - cpu0) * 1e3 / n, size=size, gzip=zipped)


def fresh(port, n, interval):
    """First scrape after each new snapshot: wait for the collection stamp to move, then scrape."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat = []
    for _ in range(n):
        time.sleep(interval * 1.05)
        dt, _, _ = scrape(conn, True)
        lat.append(dt)
    lat.sort()
    return dict(p50=pct(lat, 0.5), max=lat[-1] * 1e3)


def start_redis(tmp):
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    for _ in range(200):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            return p, port
        time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def make_streams(port, n):
    cmds = []
    for i in range(n):
        cmds.append(f"XADD bench:s{i} * job {i}")
        cmds.append(f"XGROUP CREATE bench:s{i} workers 0")
    subprocess.run(["redis-cli", "-p", str(port)], input="\n".join(cmds) + "\n", capture_output=True,
                   text=True, check=True)


def config(lport, rport, streams, interval):
    text = (f"listen: 127.0.0.1:{lport}\ncollection:\n  interval: {interval}s\n  timeout: {interval * 800}ms\n"
            f"host:\n  enabled: true\nlimits:\n  max_queues: {max(streams, 1)}\n"
            f"redis:\n  - name: bench\n    url: redis://127.0.0.1:{rport}\n")
    if streams:
        names = ", ".join(f"s{i}" for i in range(streams))
        text += f"    queues:\n      - system: stream\n        prefix: \"bench:\"\n        names: [{names}]\n"
    return text


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()


def run_one(binary, tmp, rport, streams, args):
    lport = free_port()
    cfg = os.path.join(tmp, f"redline-{lport}.yaml")
    with open(cfg, "w") as f:
        f.write(config(lport, rport, streams, args.interval))
    p = subprocess.Popen([binary, "run", "--config", cfg], stderr=subprocess.DEVNULL)
    try:
        wait_http(lport)
        time.sleep(2.5)  # first collections, queue set-up
        plain = sequential(p.pid, lport, args.scrapes, False)
        zipped = sequential(p.pid, lport, args.scrapes, True)
        first = fresh(lport, args.fresh, args.interval)
        return dict(plain=plain, zipped=zipped, fresh=first, rss=rss_mib(p.pid))
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append", default=[])
    ap.add_argument("--scrapes", type=int, default=2000)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--fresh", type=int, default=8)
    ap.add_argument("--interval", type=int, default=5, help="collection interval, seconds")
    args = ap.parse_args()
    binaries = [b.split("=", 1) for b in args.binary] or [["redline", os.path.join(ROOT, "target/release/redline")]]
    for tool in ["redis-server", "redis-cli"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    tmp = tempfile.mkdtemp()
    rows = []
    redis = None
    try:
        for label, binary in binaries:
            for name, streams in [("plain", 0), (f"{args.streams} streams", args.streams)]:
                # A fresh Redis per run: its per-command series grow with the commands it has seen.
                if redis:
                    stop(redis)
                redis, rport = start_redis(tmp)
                make_streams(rport, args.streams)
                r = run_one(binary, tmp, rport, streams, args)
                for enc in ["plain", "zipped"]:
                    m = r[enc]
                    rows.append([label, name, "gzip" if m["gzip"] else "identity", f"{m['size'] / 1024:.0f}",
                                 f"{m['p50']:.3f}", f"{m['p99']:.3f}", f"{m['max']:.2f}", f"{m['cpu_ms']:.3f}",
                                 f"{r['fresh']['p50']:.2f}" if enc == "zipped" else "",
                                 f"{r['rss']:.1f}"])
    finally:
        if redis:
            stop(redis)
        shutil.rmtree(tmp, ignore_errors=True)
    hdr = ["build", "config", "served as", "body KiB", "p50 ms", "p99 ms", "max ms", "CPU ms/scrape",
           "first scrape of a new snapshot p50 ms", "RSS MiB"]
    print(f"{args.scrapes} sequential scrapes per row (keep-alive), collection every {args.interval}s; "
          f"{os.cpu_count()} CPUs")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
