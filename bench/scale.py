#!/usr/bin/env python3
"""Issue 12 benchmark: what watching many queues costs the application that shares the Redis,
the Redis server itself, Prometheus, and redline's memory. Run it with bench/run-scale.sh (it
installs the peers and builds redline and the app client first).

Sections (--sections, comma-separated; all by default), each on redis-servers of its own:
  app      an application client (bench/appclient.rs: SET/GET, one connection, no pipelining,
           --rate requests/s) for --seconds beside: nobody, redline (collection interval 5 s),
           BullMQ's exportPrometheusMetrics() over all queues, redis_exporter
           `-check-keys bull:*:wait` (both scraped every 5 s); at each --queues count.
  cpu      Redis server CPU per collection: the floor (plain pipelined reads of the keys a queue
           collection needs), redline (and its round trips and wall time), BullMQ's exporter and
           redis_exporter per scrape; plus redline's SLOWLOG entries at each queue count.
  scrape   redline's /metrics at each queue count: scrape p50/p99 (wrk, one connection), CPU per
           scrape, body size (and gzip if served), series per queue, RSS; plus a plain config.
  slowlog  redline's SLOWLOG entries (> 1 ms) in the heavy cases: 10,000 unacked ~3 KB Celery
           messages; a 50 MiB field in an RQ job (`data`, and `enqueued_at`), a 50 MiB Sidekiq
           job at a queue tail, a 50 MiB BullMQ job `data`. (10,000 queues: see `cpu`.)
  memory   redline RSS with 50,000 queues and limits.max_queues 1,000 vs exactly 1,000 queues.

BullMQ queues: one made by the real bullmq library (5 jobs in each of waiting, delayed,
prioritized, completed, failed), copied with DUMP/RESTORE to the other names (as bench/queues.py).
Markdown tables on stdout; raw figures in bench/out/scale-<time>.json, app latencies per request
in bench/out/app-*.txt, redline logs in bench/out/redline-*.log.
"""
import argparse, json, os, platform, re, shutil, subprocess, sys, tempfile, threading, time

from common import free_port
from scale_lib import (APPCLIENT, PRODUCERS, REDLINE, ROOT, Activity, Cloner, PortWatch, RedisServer, bullmq_add,
                       bullmq_seed_one, commandstats_delta, http_get, median, proc_cpu, proc_status, queues_in, resp,
                       series, series_count, slow_summary, slowlog_by_owner, start, stop, stop_all, value, wait_http)

OUT = os.path.join(ROOT, "bench", "out")
INTERVAL = 5  # s: redline's collection interval and timeout, the peers' scrape interval (--interval)
EXPORTERS = ["nobody", "redline", "bullmq", "redis_exporter"]
HEAVY = ["celery-unacked", "rq-data", "rq-enqueued-at", "sidekiq-tail", "bullmq-data"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# redline


class Redline:
    """A release redline on its own port, one Redis target, collection every 5 s (--interval)."""

    def __init__(self, args, tmp, tag, redis_port, queues_yaml, max_queues, host=False, interval=None):
        self.port = free_port()
        interval = interval or INTERVAL
        cfg = os.path.join(tmp, f"redline-{tag}.yaml")
        limits = "".join(f"  {line}\n" for line in args.limits)
        with open(cfg, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\n"
                    f"collection:\n  interval: {interval}s\n  timeout: {interval}s\n"
                    f"host:\n  enabled: {'true' if host else 'false'}\n"
                    f"limits:\n  max_queues: {max_queues}\n  discovery_interval: 300s\n  discovery_budget: 2s\n"
                    f"{limits}"
                    f"redis:\n  - name: bench\n    url: redis://127.0.0.1:{redis_port}\n{queues_yaml}")
        self.proc = start([REDLINE, "run", "--config", cfg], log=os.path.join(args.out, f"redline-{tag}.log"))
        self.ports = PortWatch(self.proc.pid)
        wait_http(self.port)

    def scrape(self):
        status, _, body, _ = http_get(self.port)
        if status != 200:
            raise SystemExit(f"redline /metrics answered {status}")
        return body

    def wait_queues(self, expect, timeout=180):
        """Waits until a snapshot holds `expect` distinct queues; returns that body."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"redline exited with {self.proc.returncode}; see bench/out/redline-*.log")
            body = self.scrape()
            if len(queues_in(body)) >= expect:
                return body
            time.sleep(1)
        raise SystemExit(f"redline did not report {expect} queues within {timeout}s")

    def stop(self):
        self.ports.sample()
        stop(self.proc)


def bullmq_queues_yaml():
    return "    queues:\n      - system: bullmq\n"


def collections(server, red, act, count, idle_rate):
    """Measures `count` redline collections from the Redis side (bursts of commands seen by the
    Activity poller): server CPU of each (idle cost subtracted), the span Redis saw, redline's own
    wall time and round trips, and the SLOWLOG entries its connections caused."""
    # Take the baselines in a quiet spell between collections, and check that no collection
    # began meanwhile (two polls later the spell must be the same): every burst counted is whole
    # and inside the baselines.
    while True:
        since = act.quiet_since()
        if since is None:
            act.wait_bursts(time.time(), 1)
            continue
        body0 = red.scrape()
        server.slowlog_reset()
        pre0, cs0 = server.preempted(), server.commandstats()
        time.sleep(2.5 * act.EVERY)
        if act.quiet_since() == since:
            break
    walls, bursts, rss_seen = [], [], []
    for k in range(1, count + 1):
        bursts = act.wait_bursts(since, k)
        rss_seen.append(proc_status(red.proc.pid)[0])  # before our scrape allocates a body
        body = red.scrape()  # between collections: redline serves a snapshot, Redis is untouched
        walls.append(value(body, "redline_collector_duration_seconds", collector="redis"))
    red.ports.sample()
    slow = slowlog_by_owner(server.slowlog(), red.ports.ports)
    preempted = server.preempted() - pre0
    cmdstats = commandstats_delta(cs0, server.commandstats())
    cpu = [(b[1][2] - b[0][2]) - idle_rate * (b[1][0] - b[0][0]) for b in bursts]
    span = [b[1][0] - b[0][0] for b in bursts]
    trips = lambda b: value(b, "redline_redis_round_trips_total", purpose="collect")
    errors = lambda b: value(b, "redline_collector_errors_total", collector="redis") or 0
    rt0, rt1 = trips(body0), trips(body)
    hwm = proc_status(red.proc.pid)[1]
    return {
        "collections": len(bursts), "redis_cpu_s": cpu, "redis_span_s": span, "wall_s": walls,
        "round_trips": (rt1 - rt0) / count if rt0 is not None and rt1 is not None else None,
        "failed": errors(body) - errors(body0), "success": value(body, "redline_collector_success", collector="redis"),
        "slowlog": slow, "redis_preempted": preempted, "commandstats": cmdstats,
        "rss_mib": median(rss_seen), "rss_samples_mib": rss_seen, "hwm_mib": hwm,
    }


# ---------------------------------------------------------------------------------------------
# The application client and the scrapers


class Scraper(threading.Thread):
    """GETs /metrics every 5 s, as Prometheus would; records duration and size of each."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.results, self.done = port, [], threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            t = time.time()
            try:
                status, _, body, secs = http_get(self.port)
                self.results.append({"s": secs, "bytes": len(body), "status": status})
            except OSError as e:
                self.results.append({"s": time.time() - t, "bytes": 0, "status": str(e)})
            self.done.wait(max(0.0, INTERVAL - (time.time() - t)))

    def stop(self):
        self.done.set()
        self.join()


def app_client(port, seconds, rate, raw=None, ops=None):
    cmd = [APPCLIENT, "--port", str(port), "--seconds", str(seconds), "--rate", str(rate)]
    if raw:
        cmd += ["--raw", raw]
    if ops:
        cmd += ["--ops", str(ops)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"appclient failed: {out.stderr}")
    return json.loads(out.stdout)


def app_window(args, server, n, who, scrape_port, redline=None):
    """The app client for --seconds while `who` works; Redis CPU and SLOWLOG of the window."""
    errors = lambda: value(redline.scrape(), "redline_collector_errors_total", collector="redis") or 0
    e0 = errors() if redline else None
    server.slowlog_reset()
    c0, pre0 = server.cpu(), server.preempted()
    scraper = Scraper(scrape_port) if scrape_port else None
    raw = os.path.join(args.out, f"app-{n}-{who}.txt")
    app = app_client(server.port, args.seconds, args.rate, raw=raw)
    if scraper:
        scraper.stop()
    c1 = server.cpu()
    if redline:
        redline.ports.sample()
    slow = slowlog_by_owner(server.slowlog(), redline.ports.ports if redline else ())
    scrapes = scraper.results if scraper else []
    log(f"  app beside {who}: p50 {app['p50_us']:.0f} us p99.9 {app['p999_us']:.0f} us max {app['max_us']:.0f} us")
    return {"app": app, "redis_cpu_s": c1 - c0, "slowlog": slow, "scrapes": scrapes,
            "redis_preempted": server.preempted() - pre0, "failed": errors() - e0 if redline else None}


def peer_cpu_per_scrape(server, port, idle_rate, n=3, budget=10):
    """Server CPU of single scrapes of a peer that reads Redis on every scrape (n of them, fewer
    when they take longer than `budget` seconds in all)."""
    cpu, secs, size = [], [], 0
    server.slowlog_reset()
    end = time.time() + budget
    while len(cpu) < n and (not cpu or time.time() < end):
        c0, t0 = server.cpu(), time.time()
        status, _, body, s = http_get(port, timeout=300)
        cpu.append(server.cpu() - c0 - idle_rate * (time.time() - t0))
        secs.append(s)
        size = len(body)
    return {"redis_cpu_s": cpu, "scrape_s": secs, "bytes": size, "slowlog": slowlog_by_owner(server.slowlog())}


# ---------------------------------------------------------------------------------------------
# The floor


# What one collection needs from the server itself (the same commands redline sends, CLIENT LIST
# included: BullMQ workers are counted from client names), once per pass.
FLOOR_SERVER = [("INFO", "ALL"), ("CONFIG", "GET", "maxclients"), ("SLOWLOG", "LEN"), ("SLOWLOG", "GET", "32"),
                ("LATENCY", "LATEST"), ("LATENCY", "HISTOGRAM"), ("CLIENT", "LIST")]

# What one collection of a BullMQ queue needs to read, as plain commands (no TYPE checks, no
# scripts): the state sizes, paused flag, id and metrics counters, the oldest waiting /
# prioritized / due-delayed job, the newest finished scores and how many finished since.
FLOOR_READS = [
    ("LLEN", "wait"), ("LLEN", "active"), ("LLEN", "paused"), ("ZCARD", "delayed"),
    ("ZCARD", "prioritized"), ("ZCARD", "waiting-children"), ("ZCARD", "completed"), ("ZCARD", "failed"),
    ("HGET", "meta", "paused"), ("GET", "id"), ("HGET", "metrics:completed", "count"),
    ("HGET", "metrics:failed", "count"), ("LINDEX", "wait", "-1"), ("ZRANGE", "prioritized", "0", "0"),
    ("ZRANGE", "delayed", "0", "0", "WITHSCORES"), ("ZREVRANGE", "completed", "0", "0", "WITHSCORES"),
    ("ZREVRANGE", "failed", "0", "0", "WITHSCORES"), ("ZCOUNT", "completed", "(+inf", "+inf"),
    ("ZCOUNT", "failed", "(+inf", "+inf"),
]


def floor_commands(server, n):
    """RESP of the server reads, the plain reads of n queues, then the job hashes of each queue's oldest waiting and
    prioritized job (ids read from seed-0: the queues are copies, so they are the same ids)."""
    r = server.r
    ids = [x.decode() for x in (r.lindex("bull:seed-0:wait", -1), (r.zrange("bull:seed-0:prioritized", 0, 0) or [None])[0]) if x]
    out = [resp(*c) for c in FLOOR_SERVER]
    for i in range(n):
        for cmd, key, *rest in FLOOR_READS:
            out.append(resp(cmd, f"bull:seed-{i}:{key}", *rest))
    for i in range(n):
        for jid in ids:
            out.append(resp("HMGET", f"bull:seed-{i}:{jid}", "timestamp", "delay"))
    return b"".join(out), len(out)


def floor_pass(server, payload):
    """Sends the reads through `redis-cli --pipe` (C speed; Redis reads the stream 16 KB at a time,
    as it would a windowed pipeline) and waits for every reply."""
    p = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], input=payload, capture_output=True)
    if p.returncode != 0 or b"errors: 0" not in p.stdout:
        raise SystemExit(f"floor reads failed: {p.stdout.decode()} {p.stderr.decode()}")


def floor(server, n, idle_rate, repeat=3):
    payload, cmds = floor_commands(server, n)
    cpu, usec = [], []
    for _ in range(repeat):
        cs0 = server.commandstats()
        c0, t0 = server.cpu(), time.time()
        floor_pass(server, payload)
        cpu.append(server.cpu() - c0 - idle_rate * (time.time() - t0))
        d = commandstats_delta(cs0, server.commandstats())
        usec.append(sum(v["usec"] for k, v in d.items() if k != "echo"))
    return {"redis_cpu_s": cpu, "commands": cmds, "command_usec": usec}


# ---------------------------------------------------------------------------------------------
# Scrapes of redline's /metrics


def wrk(port, seconds, headers=()):
    cmd = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True).stdout

    def ms(p):
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, u = float(m.group(1)), m.group(2)
        return v / 1e3 if u == "us" else v * 1e3 if u == "s" else v

    reqs = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", out)
    n = int(reqs.group(1)) if reqs else 0
    read = float(reqs.group(2)) * {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[reqs.group(3)] if reqs else 0
    return {"p50_ms": ms(50), "p99_ms": ms(99), "requests": n, "mean_bytes": read / n if n else 0, "raw": out}


def scrape_figures(args, red):
    """Scrape latency (wrk, one connection), redline CPU per scrape, body, series, RSS."""
    _, _, body, _ = http_get(red.port)
    _, hdrs, zbody, _ = http_get(red.port, headers={"Accept-Encoding": "gzip"})
    gz = hdrs.get("content-encoding") == "gzip"
    errors = lambda b: value(b, "redline_collector_errors_total", collector="redis") or 0
    e0 = errors(body)
    cpu0 = proc_cpu(red.proc.pid)
    plain = wrk(red.port, args.scrape_seconds)
    cpu1 = proc_cpu(red.proc.pid)
    failed = errors(red.scrape()) - e0
    zipped = wrk(red.port, args.scrape_seconds, ["Accept-Encoding: gzip"]) if gz else None
    total, with_queue = series_count(body)
    seen = len(queues_in(body))
    rss, hwm = proc_status(red.proc.pid)
    return {
        "queues": seen, "wrk": plain, "wrk_gzip": zipped, "bytes": len(body), "gzip_bytes": len(zbody) if gz else None,
        "cpu_ms_per_scrape": (cpu1 - cpu0) * 1e3 / max(1, plain["requests"]), "series": total,
        "series_per_queue": with_queue / seen if seen else None, "rss_mib": rss, "hwm_mib": hwm,
        "failed_during_wrk": failed,
    }


# ---------------------------------------------------------------------------------------------
# Sections


def per_queue_count(args, tmp, results):
    """app, cpu and scrape sections (and the 10,000-queue SLOWLOG row) for each queue count."""
    sections = set(args.sections)
    # SLOWLOG alone needs only redline's collections at the largest count.
    counts = args.queues if sections & {"app", "cpu", "scrape"} else [max(args.queues)]
    server = RedisServer(tmp, "queues")
    try:
        t = time.time()
        bullmq_seed_one(server.port, "seed-0")
        cloner = Cloner(server, "seed-0", "seed-%d")
        log(f"seeded the template queue ({cloner.keys_per_queue()} keys) in {time.time() - t:.1f}s")
        for n in counts:
            t = time.time()
            cloner.grow(n)
            mem = server.r.info("memory")["used_memory_human"]
            log(f"{n} queues: {server.r.dbsize()} keys, {mem}, seeded in {time.time() - t:.1f}s")
            row = results.setdefault("queues", {}).setdefault(str(n), {"keys": server.r.dbsize(), "used_memory": mem})
            idle = server.idle_cpu_rate(1.0)
            row["idle_cpu_rate"] = idle
            if "app" in sections and "nobody" in args.exporters:
                row["nobody"] = app_window(args, server, n, "nobody", None)
            if sections & {"app", "cpu", "scrape", "slowlog"} and "redline" in args.exporters:
                row["redline"] = redline_at(args, tmp, server, n, sections)
            for peer in ("bullmq", "redis_exporter"):
                if sections & {"app", "cpu"} and peer in args.exporters:
                    row[peer] = peer_at(args, server, n, peer, sections, idle)
            if "cpu" in sections:
                row["floor"] = floor(server, n, server.idle_cpu_rate(1.0))
                log(f"  floor: {row['floor']['commands']} plain reads, "
                    f"{median(row['floor']['redis_cpu_s']) * 1e3:.1f} ms Redis CPU")
            save(args, results)
    finally:
        server.stop()


def redline_at(args, tmp, server, n, sections):
    out = {}
    if sections & {"app", "cpu", "slowlog"}:
        out.update(redline_collecting(args, tmp, server, n, sections))
    if "scrape" in sections:
        out["scrape"] = scrape_at(args, tmp, server, n)
    return out


def redline_collecting(args, tmp, server, n, sections):
    """redline collecting every 5 s: its Redis cost per collection alone, then the app beside it."""
    out = {}
    act = Activity(server.port)
    try:
        time.sleep(0.2)
        idle = server.idle_cpu_rate(1.0)  # with the poller running: its cost is subtracted too
        red = Redline(args, tmp, f"{n}q", server.port, bullmq_queues_yaml(), max(n, 1000))
        try:
            t = time.time()
            red.wait_queues(n)
            out["ready_s"] = time.time() - t
            if sections & {"cpu", "slowlog"}:
                out["collections"] = collections(server, red, act, args.collections, idle)
                c = out["collections"]
                log(f"  redline: {median(c['redis_cpu_s']) * 1e3:.1f} ms Redis CPU/collection, "
                    f"{c['round_trips']} round trips, wall {median(c['wall_s']):.3f}s, "
                    f"SLOWLOG {slow_summary(c['slowlog'].get('redline', []))}")
            act.stop()
            if "app" in sections:
                out["window"] = app_window(args, server, n, "redline", red.port, red)
        finally:
            red.stop()
    finally:
        if act.is_alive():
            act.stop()
    return out


def scrape_at(args, tmp, server, n):
    """Scrapes of a full n-queue snapshot, between two collections: this redline collects every
    --scrape-interval seconds and wrk starts as a collection ends, so the figures are the cost of
    serving the snapshot, not of a collection racing the scrapes for the CPU (at 10,000 queues on
    a busy 2-CPU machine that race makes collections time out, and a failed collection empties
    the snapshot; the `app` section shows that case)."""
    if args.scrape_seconds >= args.scrape_interval - 2:
        raise SystemExit("--scrape-seconds must be well below --scrape-interval")
    act = Activity(server.port)
    red = Redline(args, tmp, f"{n}q-scrape", server.port, bullmq_queues_yaml(), max(n, 1000),
                  interval=args.scrape_interval)
    try:
        t0 = time.time()
        red.wait_queues(n, timeout=args.scrape_interval * 3 + 60)
        # wrk must end before the next collection starts (an interval after the last one started).
        began = act.last_burst_start(t0)
        if act.quiet_since() is None or began is None or \
                time.time() + args.scrape_seconds + 2 > began + args.scrape_interval:
            act.wait_bursts(time.time(), 1, timeout=args.scrape_interval * 2)
        act.stop()
        s = scrape_figures(args, red)
    finally:
        red.stop()
        if act.is_alive():
            act.stop()
    log(f"  scrape: p50 {s['wrk']['p50_ms']:.2f} ms p99 {s['wrk']['p99_ms']:.2f} ms, {s['bytes']} bytes")
    return s


def peer_at(args, server, n, peer, sections, idle):
    port = free_port()
    if peer == "bullmq":
        p = start(["node", os.path.join(ROOT, "bench", "bullmq.js"), "serve",
                   json.dumps({"port": server.port, "queues": n, "listen": port})])
    else:
        p = start(["prometheus-redis-exporter", "-redis.addr", f"redis://127.0.0.1:{server.port}",
                   "-web.listen-address", f"127.0.0.1:{port}", "-check-keys", "bull:*:wait"])
    out = {}
    try:
        wait_http(port, timeout=300)
        if "cpu" in sections:
            out["per_scrape"] = peer_cpu_per_scrape(server, port, idle)
            log(f"  {peer}: {median(out['per_scrape']['redis_cpu_s']) * 1e3:.1f} ms Redis CPU/scrape, "
                f"scrape {median(out['per_scrape']['scrape_s']):.3f}s")
        if "app" in sections:
            out["window"] = app_window(args, server, n, peer, port)
        rss, hwm = proc_status(p.pid)
        out["rss_mib"], out["hwm_mib"] = rss, hwm
    finally:
        stop(p)
    return out


def plain_scrape(args, tmp, results):
    """Scrape figures of a plain config (one Redis target, host metrics, no queues)."""
    server = RedisServer(tmp, "plain")
    try:
        red = Redline(args, tmp, "plain", server.port, "", 1000, host=True)
        try:
            time.sleep(INTERVAL + 1)
            results["plain_scrape"] = scrape_figures(args, red)
        finally:
            red.stop()
    finally:
        server.stop()


def seed_heavy(case, server):
    py = [sys.executable, os.path.join(ROOT, "bench", "seed_heavy.py")]
    if case in ("celery-unacked", "rq-data", "rq-enqueued-at"):
        out = subprocess.run(py + [case, str(server.port)], check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    if case == "sidekiq-tail":
        # The real Sidekiq client: the 50 MiB job first, then three small ones. Sidekiq LPUSHes and
        # fetches from the right, so the big one is the tail: the oldest job, the one its latency reads.
        ruby = ("require 'sidekiq'; Sidekiq.configure_client { |c| c.redis = { url: ARGV[0] } }; "
                "Sidekiq::Client.push('queue' => 'big', 'class' => 'BigJob', 'args' => ['x' * (50 * 1024 * 1024)]); "
                "3.times { |i| Sidekiq::Client.push('queue' => 'big', 'class' => 'SmallJob', 'args' => [i]) }")
        subprocess.run(["ruby", "-W0", "-e", ruby, f"redis://127.0.0.1:{server.port}/0"], check=True,
                       stdout=subprocess.DEVNULL)
        return {"tail_bytes": len(server.r.lindex("queue:big", -1)), "length": server.r.llen("queue:big")}
    if case == "bullmq-data":
        subprocess.run(["node", os.path.join(ROOT, "bench", "bullmq.js"), "big",
                        json.dumps({"port": server.port, "queue": "big", "mb": 50})], check=True,
                       stdout=subprocess.DEVNULL)
        return {"data_bytes": server.r.hstrlen("bull:big:1", "data"), "waiting": server.r.llen("bull:big:wait")}
    raise SystemExit(f"unknown heavy case {case}")


HEAVY_QUEUE = {"celery-unacked": "celery", "rq-data": "big", "rq-enqueued-at": "big", "sidekiq-tail": "big",
               "bullmq-data": "big"}


def reported(body, queue):
    """What redline says about the heavy case's queue, to check that cheap is not wrong: its job
    counts by state, estimate flags, oldest ready age, and server-wide counts (Celery unacked)."""
    out = {}
    for name, key in (("redline_queue_jobs", "jobs"), ("redline_queue_jobs_estimated", "estimated")):
        for lbl, v in series(body, name):
            if f'queue="{queue}"' in lbl:
                state = re.search(r'state="([^"]*)"', lbl)
                out[f"{key}:{state.group(1) if state else '?'}"] = v
    for lbl, v in series(body, "redline_queue_oldest_ready_age_seconds"):
        if f'queue="{queue}"' in lbl:
            out["oldest_ready_age_s"] = v
    for lbl, v in series(body, "redline_queue_server_jobs"):
        state = re.search(r'state="([^"]*)"', lbl)
        if state:
            out[f"server:{state.group(1)}"] = v
    return out


HEAVY_SYSTEM = {"celery-unacked": "celery", "rq-data": "rq", "rq-enqueued-at": "rq", "sidekiq-tail": "sidekiq",
                "bullmq-data": "bullmq"}


def heavy(args, tmp, results):
    for case in args.heavy:
        server = RedisServer(tmp, case)
        try:
            t = time.time()
            seeded = seed_heavy(case, server)
            log(f"{case}: seeded in {time.time() - t:.1f}s: {seeded}")
            act = Activity(server.port)
            try:
                time.sleep(0.2)
                idle = server.idle_cpu_rate(1.0)
                queues = f"    queues:\n      - system: {HEAVY_SYSTEM[case]}\n"
                red = Redline(args, tmp, case, server.port, queues, 1000)
                try:
                    red.wait_queues(1, timeout=120)
                    c = collections(server, red, act, args.collections, idle)
                    c["reported"] = reported(red.scrape(), HEAVY_QUEUE[case])
                finally:
                    red.stop()
            finally:
                act.stop()
            c["seeded"] = seeded
            results.setdefault("heavy", {})[case] = c
            log(f"  redline SLOWLOG {slow_summary(c['slowlog'].get('redline', []))}, "
                f"RSS peak {c['hwm_mib']:.0f} MiB")
            save(args, results)
        finally:
            server.stop()


def memory(args, tmp, results):
    server = RedisServer(tmp, "memory")
    try:
        # light: one waiting job per queue (6 keys); full: the 35-key queue of the other sections.
        if args.memory_queue == "full":
            bullmq_seed_one(server.port, "light-0")
        else:
            bullmq_add(server.port, "light-0", 1)
        cloner = Cloner(server, "light-0", "light-%d")
        out = {}
        for n in (1000, 50000):
            t = time.time()
            cloner.grow(n)
            log(f"memory: {n} {args.memory_queue} queues ({server.r.dbsize()} keys) seeded in {time.time() - t:.1f}s")
            act = Activity(server.port)
            try:
                time.sleep(0.2)
                idle = server.idle_cpu_rate(1.0)
                red = Redline(args, tmp, f"memory-{n}", server.port, bullmq_queues_yaml(), 1000)
                try:
                    # Discovery must have found all n before the cap is what bites.
                    end = time.time() + 300
                    while time.time() < end:
                        body = red.scrape()
                        if (value(body, "redline_queue_discovered") or 0) >= n:
                            break
                        time.sleep(1)
                    c = collections(server, red, act, args.collections, idle)
                    body = red.scrape()
                    kept = sorted(q.decode() for q in queues_in(body))
                    rss, hwm = c["rss_mib"], proc_status(red.proc.pid)[1]
                    out[str(n)] = {"keys": server.r.dbsize(), "rss_mib": rss, "hwm_mib": hwm, "bytes": len(body),
                                   "collected": len(kept), "kept_first": kept[:5],
                                   "dropped": value(body, "redline_queue_dropped"),
                                   "discovered": value(body, "redline_queue_discovered"),
                                   "redis_cpu_s": c["redis_cpu_s"], "wall_s": c["wall_s"]}
                    log(f"  {n} queues, cap 1000: RSS {rss:.1f} MiB (peak {hwm:.1f})")
                finally:
                    red.stop()
            finally:
                act.stop()
        results["memory"] = out
        save(args, results)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Report


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    rv = next((x[2:] for x in rv if x.startswith("v=")), "?")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    bullmq = json.load(open(os.path.join(PRODUCERS, "node_modules", "bullmq", "package.json")))["version"]
    rex = subprocess.run(["prometheus-redis-exporter", "--version"], capture_output=True, text=True)
    rex = re.findall(r"Redis Metrics Exporter (\S+)", rex.stdout + rex.stderr)
    return {"nproc": os.cpu_count(), "cpu": model, "redis": rv, "kernel": platform.release(), "redline_commit": commit,
            "bullmq": bullmq, "redis_exporter": f"redis_exporter {rex[0]}" if rex else "redis_exporter ?", "loadavg_start": os.getloadavg()}


def save(args, results):
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1, default=str)


def num(x):
    return "-" if x is None else f"{x:.0f}"


def ms(x, digits=2):
    return "-" if x is None or x != x else f"{x * 1e3:.{digits}f}"


def short(cmd):
    """A SLOWLOG command, short: the script's first key for EVALSHA, else three words."""
    t = cmd.split()
    if t and t[0].upper() in ("EVALSHA", "EVAL") and len(t) > 3:
        return f"{t[0]} {t[1][:8]}… {t[3]}"
    return " ".join(t[:3])


def report(results):
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu']}), Redis {m['redis']}, redline {m['redline_commit']}, "
          f"bullmq {m['bullmq']}, {m['redis_exporter']}; load average at start "
          f"{' '.join(f'{x:.1f}' for x in m['loadavg_start'])}, at end "
          f"{' '.join(f'{x:.1f}' for x in results.get('loadavg_end', []))}")
    if "appclient_check" in results:
        c = results["appclient_check"]
        print(f"app client check (closed loop, {c['ops']} requests): appclient p50 {c['p50_us']:.0f} us, "
              f"redis-benchmark p50 {c['redis_benchmark_p50_us']} us; one timestamp costs {c['clock_ns']} ns")
    q = results.get("queues", {})
    rows = [(n, who, row[who]) for n, row in q.items() for who in EXPORTERS if who in row]
    app_rows = [(n, who, d if who == "nobody" else d.get("window")) for n, who, d in rows]
    app_rows = [x for x in app_rows if x[2]]
    if app_rows:
        print(f"\n### Application latency (SET/GET, one connection, {results['args']['rate']} requests/s, "
              f"{results['args']['seconds']} s per case; exporters every {results['args']['interval']} s)\n")
        print("| queues | beside | app p50 ms | p99 ms | p99.9 ms | max ms | requests > 1 ms | requests "
              "| exporter SLOWLOG > 1 ms | failed collections | Redis preempted | scrape p50 s | scrape max s | body bytes |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, who, w in app_rows:
            a = w["app"]
            mine = {"redline": "redline", "bullmq": "bench-bullmq-exporter", "redis_exporter": "redis_exporter"}.get(who)
            slow = slow_summary(w["slowlog"].get(mine, [])) if mine else "-"
            sc = [s["s"] for s in w["scrapes"]]
            size = w["scrapes"][-1]["bytes"] if w["scrapes"] else None
            print(f"| {n} | {who} | {a['p50_us'] / 1e3:.3f} | {a['p99_us'] / 1e3:.3f} | {a['p999_us'] / 1e3:.3f} "
                  f"| {a['max_us'] / 1e3:.3f} | {a['over_1ms']} | {a['ops']} | {slow} | {num(w.get('failed'))} "
                  f"| {w.get('redis_preempted', '-')} "
                  f"| {f'{median(sc):.3f}' if sc else '-'} | {f'{max(sc):.3f}' if sc else '-'} | {size or '-'} |")
    cpu_rows = [(n, row) for n, row in q.items() if "floor" in row or "collections" in row.get("redline", {})]
    if cpu_rows:
        print("\n### Redis cost per collection (server CPU from INFO, idle cost subtracted; medians of "
              f"{results['args']['collections']} collections / 3 scrapes / 3 floor passes)\n")
        print("| queues | floor: plain reads | floor CPU ms | redline CPU ms | redline / floor | redline round trips "
              "| redline wall s | failed | redline SLOWLOG > 1 ms | Redis preempted | BullMQ exporter CPU ms | redis_exporter CPU ms |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, row in cpu_rows:
            fl = row.get("floor", {})
            c = row.get("redline", {}).get("collections", {})
            fcpu, rcpu = median(fl.get("redis_cpu_s", [])), median(c.get("redis_cpu_s", []))
            ratio = f"{rcpu / fcpu:.1f}x" if fl and c and fcpu > 0 else "-"
            peer = lambda p: ms(median(row.get(p, {}).get("per_scrape", {}).get("redis_cpu_s", [])), 1)
            rt = c.get("round_trips")
            print(f"| {n} | {fl.get('commands', '-')} | {ms(fcpu, 1)} | {ms(rcpu, 1)} | {ratio} "
                  f"| {'-' if rt is None else f'{rt:.0f}'} | {median(c.get('wall_s', [])):.3f} | {num(c.get('failed'))} "
                  f"| {slow_summary(c.get('slowlog', {}).get('redline', []))} | {c.get('redis_preempted', '-')} "
                  f"| {peer('bullmq')} | {peer('redis_exporter')} |")
    sc_rows = [(f"{n} BullMQ queues", row["redline"]["scrape"]) for n, row in q.items() if "scrape" in row.get("redline", {})]
    if "plain_scrape" in results:
        sc_rows.append(("plain (Redis + host, no queues)", results["plain_scrape"]))
    if sc_rows:
        print(f"\n### redline /metrics (wrk, one connection, {results['args']['scrape_seconds']} s, "
              f"between collections)\n")
        print("| config | queues in body | scrape p50 ms | p99 ms | scrapes | mean bytes/scrape | failed collections "
              "| redline CPU ms/scrape | body bytes | gzip bytes | gzip p99 ms | series | series/queue | RSS MiB | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, s in sc_rows:
            gz = s.get("wrk_gzip")
            gz99 = f"{gz['p99_ms']:.2f}" if gz else "-"
            spq = s.get("series_per_queue")
            print(f"| {name} | {s['queues']} | {s['wrk']['p50_ms']:.2f} | {s['wrk']['p99_ms']:.2f} | {s['wrk']['requests']} "
                  f"| {s['wrk'].get('mean_bytes', 0):.0f} | {num(s.get('failed_during_wrk'))} | {s['cpu_ms_per_scrape']:.2f} | {s['bytes']} | {s.get('gzip_bytes') or 'not served'} "
                  f"| {gz99} | {s['series']} "
                  f"| {'-' if spq is None else f'{spq:.1f}'} | {s['rss_mib']:.1f} | {s['hwm_mib']:.1f} |")
    hv = dict(results.get("heavy", {}))
    counted = [n for n, row in q.items() if "collections" in row.get("redline", {})]
    if counted:
        n = max(counted, key=int)
        hv = {f"{n} BullMQ queues": q[n]["redline"]["collections"], **hv}
    if hv:
        print("\n### SLOWLOG (slowlog-log-slower-than 1000 us) during redline collections\n")
        print("| case | redline entries > 1 ms | slowest redline commands | Redis CPU ms/collection | other entries "
              "| Redis preempted | collections (failed) | redline wall s | RSS MiB | peak RSS MiB | redline reports |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for case, c in hv.items():
            mine = sorted(c["slowlog"].get("redline", []), key=lambda e: -e["us"])
            cmds = "; ".join(f"{short(e['cmd'])} {e['us'] / 1e3:.0f} ms" for e in mine[:2]).replace("|", "/") or "-"
            others = ", ".join(f"{who}: {slow_summary(es)}" for who, es in c["slowlog"].items() if who != "redline") or "0"
            print(f"| {case} | {slow_summary(mine)} | {cmds} | {ms(median(c['redis_cpu_s']), 1)} | {others} | {c.get('redis_preempted', '-')} "
                  f"| {c['collections']} ({num(c.get('failed'))}) | {median(c['wall_s']):.3f} | {c['rss_mib']:.1f} | {c['hwm_mib']:.1f} "
                  f"| {', '.join(f'{k} {v:g}' for k, v in c.get('reported', {}).items()) or '-'} |")
    if "memory" in results:
        mem = results["memory"]
        kind = "one waiting job" if results["args"].get("memory_queue") != "full" else "5 jobs in each state"
        print(f"\n### Memory bound (limits.max_queues 1000; BullMQ queues with {kind})\n")
        print("| queues in Redis | keys | queues collected | dropped | RSS MiB | peak RSS MiB | body bytes | kept first |")
        print("|---|---|---|---|---|---|---|---|")
        for n, d in mem.items():
            print(f"| {n} | {d['keys']} | {d['collected']} | {num(d['dropped'])} | {d['rss_mib']:.1f} | {d['hwm_mib']:.1f} "
                  f"| {d['bytes']} | {', '.join(d['kept_first'])} |")
        if "1000" in mem and "50000" in mem:
            print(f"\nRSS 50,000 / 1,000: {mem['50000']['rss_mib'] / mem['1000']['rss_mib']:.2f}x "
                  f"(peak {mem['50000']['hwm_mib'] / mem['1000']['hwm_mib']:.2f}x); goal <= 1.5x")


def appclient_check(server):
    """The app client and redis-benchmark side by side, closed loop on an idle server: the
    client's own overhead is what its p50 adds over redis-benchmark's (C, hiredis)."""
    a = app_client(server.port, 30, 0, ops=20000)
    out = subprocess.run(["redis-benchmark", "-p", str(server.port), "-c", "1", "-n", "20000", "-t", "get",
                          "-q", "--precision", "3"], capture_output=True, text=True).stdout
    p50 = out.rsplit("p50=", 1)[-1].split()[0] if "p50=" in out else "?"
    a["redis_benchmark_p50_us"] = f"{float(p50) * 1e3:.0f}" if p50 != "?" else "?"
    return a


def main():
    global INTERVAL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="app,cpu,scrape,slowlog,memory")
    ap.add_argument("--queues", default="1,1000,10000", help="queue counts for app, cpu, scrape")
    ap.add_argument("--exporters", default=",".join(EXPORTERS), help="for app and cpu")
    ap.add_argument("--heavy", default=",".join(HEAVY), help="SLOWLOG cases")
    ap.add_argument("--seconds", type=float, default=20, help="app client time per case")
    ap.add_argument("--rate", type=float, default=2000, help="app requests per second (0: closed loop)")
    ap.add_argument("--interval", type=int, default=INTERVAL, help="seconds between collections / scrapes")
    ap.add_argument("--collections", type=int, default=3, help="redline collections measured per case")
    ap.add_argument("--scrape-seconds", type=int, default=10, help="wrk time per scrape case")
    ap.add_argument("--scrape-interval", type=int, default=20,
                    help="collection interval of the redline the scrape section measures")
    ap.add_argument("--limits", action="append", default=[], metavar="'key: value'",
                    help="extra line under limits: in redline's config (repeatable)")
    ap.add_argument("--memory-queue", choices=["light", "full"], default="light",
                    help="memory section: queues of one waiting job (6 keys) or the full 35-key queue")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    args.sections = [s for s in args.sections.split(",") if s]
    args.queues = [int(x) for x in args.queues.split(",") if x]
    args.exporters = [x for x in args.exporters.split(",") if x]
    args.heavy = [x for x in args.heavy.split(",") if x]
    INTERVAL = args.interval
    for x in args.sections:
        if x not in ("app", "cpu", "scrape", "slowlog", "memory"):
            raise SystemExit(f"unknown section {x}")
    os.makedirs(args.out, exist_ok=True)
    args.json = os.path.join(args.out, f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json")
    for f in (REDLINE, APPCLIENT):
        if not os.path.exists(f):
            raise SystemExit(f"{f} missing: run bench/run-scale.sh")
    results = {"machine": machine(), "args": {k: v for k, v in vars(args).items()}}
    tmp = tempfile.mkdtemp(prefix="redline-scale-")
    t0 = time.time()
    try:
        if "app" in args.sections:
            s = RedisServer(tmp, "check")
            try:
                results["appclient_check"] = appclient_check(s)
            finally:
                s.stop()
        if set(args.sections) & {"app", "cpu", "scrape", "slowlog"}:
            per_queue_count(args, tmp, results)
        if "scrape" in args.sections:
            plain_scrape(args, tmp, results)
        if "slowlog" in args.sections:
            heavy(args, tmp, results)
        if "memory" in args.sections:
            memory(args, tmp, results)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    results["elapsed_s"] = time.time() - t0
    save(args, results)
    report(results)
    print(f"\n{time.time() - t0:.0f} s; raw figures: {os.path.relpath(args.json, ROOT)}")


if __name__ == "__main__":
    main()
