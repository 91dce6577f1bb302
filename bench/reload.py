#!/usr/bin/env python3
"""What a heavy reload costs the scrapers: while a thread scrapes /metrics back to back, redline is
asked to reload a 200 KB deeply nested config, a thresholds file with 1,000 overrides (valid: rules and
promtool tests are regenerated) and one with 8,000. Prints per case how long the reload took to answer
and the slowest scrape during it (loopback only).

Usage: bench/reload.py [--binary LABEL=PATH ...]   (default: target/release/redline)
Builds that serve POST /-/reload only with --web.enable-lifecycle get the flag; older ones ignore it.
"""
import argparse, http.client, os, shutil, signal, subprocess, tempfile, threading, time

from common import free_port, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def overrides(n):
    lines = ["overrides:"]
    for i in range(n):
        lines += [f"  - alert: queue_backlog", f"    match: {{queue: q{i}}}", "    warning: 5"]
    return "\n".join(lines) + "\n"


def post_reload(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t = time.perf_counter()
    c.request("POST", "/-/reload")
    r = c.getresponse()
    r.read()
    return r.status, time.perf_counter() - t


class Scraper(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.worst, self.count, self.failed = port, False, 0.0, 0, 0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stop:
            t = time.perf_counter()
            try:
                conn.request("GET", "/metrics")
                conn.getresponse().read()
                self.count += 1
            except OSError:
                self.failed += 1
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.worst = max(self.worst, time.perf_counter() - t)


def measure(binary, tmp):
    port = free_port()
    base = f"listen: 127.0.0.1:{port}\ncollection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: true\n" \
           f"thresholds:\n  file: thresholds.yaml\n  rules_dir: rules\n"
    cfg = os.path.join(tmp, "redline.yaml")
    thr = os.path.join(tmp, "thresholds.yaml")
    # Catalogue defaults, in a form every build reads (older builds lack newer alert keys).
    shipped = "alerts: {}\n"
    with open(cfg, "w") as f:
        f.write(base)
    with open(thr, "w") as f:
        f.write(shipped)
    help_text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
    flags = ["--web.enable-lifecycle"] if "enable-lifecycle" in help_text else []
    p = subprocess.Popen([binary, "run", "--config", cfg] + flags, stderr=subprocess.DEVNULL)
    out = []
    try:
        wait_http(port)
        time.sleep(1.5)
        cases = [
            ("200 KB nested config", cfg, "redis: " + "[" * 100_000 + "]" * 100_000 + "\n", base),
            ("1,000 overrides", thr, overrides(1000), shipped),
            ("8,000 overrides", thr, overrides(8000), shipped),
        ]
        for name, path, text, restore in cases:
            with open(path, "w") as f:
                f.write(text)
            s = Scraper(port)
            s.start()
            time.sleep(0.3)
            status, took = post_reload(port)
            time.sleep(0.3)
            s.stop = True
            s.join()
            out.append((name, status, took, s.worst, s.count, s.failed))
            with open(path, "w") as f:
                f.write(restore)
            post_reload(port)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append", default=[])
    args = ap.parse_args()
    binaries = [b.split("=", 1) for b in args.binary] or [["redline", os.path.join(ROOT, "target/release/redline")]]
    print("| build | reload of | answer | reload took s | slowest scrape during it ms | scrapes | failed |")
    print("|---|---|---|---|---|---|---|")
    for label, binary in binaries:
        tmp = tempfile.mkdtemp()
        try:
            for name, status, took, worst, count, failed in measure(binary, tmp):
                print(f"| {label} | {name} | {status} | {took:.2f} | {worst * 1e3:.1f} | {count} | {failed} |")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
