"""Building blocks of bench/scale.py: spawned processes (redis-server, redline, the peers), Redis
server CPU and activity, SLOWLOG attribution, queue seeding by DUMP/RESTORE, metrics parsing.

Everything talks to 127.0.0.1 only, on servers this benchmark spawns on free ports.
"""
import http.client, json, os, re, shutil, signal, statistics, subprocess, tempfile, threading, time

import redis

from common import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCERS = os.path.join(ROOT, "tests", "producers")
REDLINE = os.path.join(ROOT, "target", "release", "redline")
APPCLIENT = os.path.join(ROOT, "target", "bench", "appclient")

_procs = []  # every process started here, stopped by stop_all()


def start(cmd, log=None, **kw):
    """Starts a process we own; its output goes to `log` (a path) or nowhere."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=out, stderr=out if log else subprocess.DEVNULL, **kw)
    _procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _procs:
        _procs.remove(p)


def stop_all():
    for p in list(reversed(_procs)):
        stop(p)


def proc_status(pid):
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out.get("VmRSS", float("nan")), out.get("VmHWM", float("nan"))


def proc_cpu(pid):
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcp_ports(pid):
    """Local ports of the TCP sockets a process holds (to tell its SLOWLOG entries apart)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


class PortWatch:
    """A process's TCP ports, to attribute SLOWLOG entries of a redline that sets no client name
    (current redline names every connection `redline`, which slowlog_by_owner reads first).
    Sampled at start and on demand, never periodically: walking /proc/<pid>/fd and /proc/net/tcp
    every half second put redline's scrape p99 at 1.2 ms instead of 0.13-0.16 ms (measured), and
    the same walk would add to the application's latency in the app section, which the "nobody"
    baseline does not have."""

    def __init__(self, pid):
        self.pid = pid
        self.ports = tcp_ports(pid)

    def sample(self):
        self.ports |= tcp_ports(self.pid)


def http_get(port, path="/metrics", headers=None, timeout=120):
    """One GET: (status, headers dict, body bytes, seconds)."""
    t = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        resp = c.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, time.perf_counter() - t
    finally:
        c.close()


def wait_http(port, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if http_get(port, timeout=60)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing served /metrics on port {port} within {timeout}s")


def pct(values, q):
    """Nearest-rank percentile of a list (nan when empty)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))]


# ---------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    """A redis-server of our own on a free port, logging every command slower than 1 ms."""

    def __init__(self, tmp, name):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
        self.proc = start(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", self.dir, "--slowlog-log-slower-than", "1000",
                           "--slowlog-max-len", "100000", "--io-threads", "1"])
        self.r = redis.Redis(port=self.port, client_name="bench")
        for _ in range(200):
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit("redis-server did not start")

    def cpu(self):
        i = self.r.info("cpu")
        return i["used_cpu_sys"] + i["used_cpu_user"]

    def idle_cpu_rate(self, seconds=2.0):
        """Server CPU seconds per second with no client but us (serverCron and friends)."""
        c0, t0 = self.cpu(), time.time()
        time.sleep(seconds)
        return (self.cpu() - c0) / (time.time() - t0)

    def preempted(self):
        """Times the kernel took the CPU from Redis's main thread (involuntary context switches):
        on a busy machine a command can be descheduled mid-run and show up in SLOWLOG for it."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    return int(line.split()[1])
        return 0

    def commandstats(self):
        """{command: (calls, usec)} from INFO commandstats."""
        return {k[len("cmdstat_"):]: (v["calls"], v["usec"]) for k, v in self.r.info("commandstats").items()}


    def slowlog_reset(self):
        self.r.slowlog_reset()

    def slowlog(self):
        return self.r.slowlog_get(100000)

    def stop(self):
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def commandstats_delta(before, after):
    """Calls and usec per command between two INFO commandstats. Commands run inside a script
    are counted both on their own line and in the script's EVALSHA time."""
    out = {}
    for k, (calls, usec) in after.items():
        c0, u0 = before.get(k, (0, 0))
        if calls > c0:
            out[k] = {"calls": calls - c0, "usec": usec - u0}
    return out


def slowlog_by_owner(entries, redline_ports=()):
    """SLOWLOG entries grouped by who sent them: redline (by client name, or by one of its
    ports while it sets no name), else the client name, else the address."""
    out = {}
    for e in entries:
        name = (e.get("client_name") or b"").decode(errors="replace")
        addr = (e.get("client_address") or b"").decode(errors="replace")
        port = int(addr.rsplit(":", 1)[1]) if ":" in addr else -1
        if name.startswith("redline") or port in redline_ports:
            who = "redline"
        elif addr == "?:0":
            who = "lua"  # a command run inside someone's script; the script has its own entry
        else:
            who = name or addr
        cmd = e["command"].decode(errors="replace") if isinstance(e["command"], bytes) else str(e["command"])
        out.setdefault(who, []).append({"us": e["duration"], "cmd": cmd[:160], "client": addr, "name": name})
    return out


def slow_summary(entries):
    """'count (max ms)' of a list of attributed entries."""
    if not entries:
        return "0"
    return f"{len(entries)} (max {max(e['us'] for e in entries) / 1000:.1f} ms)"


class Activity(threading.Thread):
    """Polls `INFO stats cpu` every 50 ms on its own connection: a Redis-side view of when a
    collection runs (bursts of commands) and what it costs (server CPU), whatever the client."""

    EVERY = 0.05
    BUSY = 5  # more commands than this between two polls (ours is one) means someone is working

    def __init__(self, port):
        super().__init__(daemon=True)
        self.r = redis.Redis(port=port, client_name="bench-activity")
        self.samples = []  # (time, commands processed, server cpu seconds)
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            i = self.r.execute_command("INFO", "stats", "cpu")
            self.samples.append((time.time(), i["total_commands_processed"], i["used_cpu_sys"] + i["used_cpu_user"]))
            time.sleep(self.EVERY)

    def stop(self):
        self.done.set()
        self.join()

    def bursts(self, since, quiet):
        """Completed bursts after `since`: (sample before, first quiet sample after), each
        followed by `quiet` s of quiet (the sample after catches replies still being written)."""
        s = [x for x in self.samples if x[0] >= since]
        out, cur = [], None
        for i in range(1, len(s)):
            busy = s[i][1] - s[i - 1][1] > self.BUSY
            if busy:
                cur = [i - 1, i] if cur is None else [cur[0], i]
            elif cur is not None and s[i][0] - s[cur[1]][0] >= quiet:
                out.append((s[cur[0]], s[cur[1] + 1]))
                cur = None
        return out

    def quiet_since(self, quiet=0.6):
        """The time of the first sample of the current quiet spell if it has lasted `quiet`
        seconds (no collection running now), else None."""
        s = self.samples
        i = len(s) - 1
        while i > 0 and s[i][1] - s[i - 1][1] <= self.BUSY:
            i -= 1
        return s[i][0] if s and s[-1][0] - s[i][0] >= quiet else None

    def last_burst_start(self, since):
        b = self.bursts(since, 0.0)
        return b[-1][0][0] if b else None

    def wait_bursts(self, since, count, quiet=0.6, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            b = self.bursts(since, quiet)
            if len(b) >= count:
                return b[:count]
            time.sleep(0.1)
        raise TimeoutError(f"saw {len(self.bursts(since, quiet))} of {count} collections in {timeout}s")


# ---------------------------------------------------------------------------------------------
# Queue seeding


def resp(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        p = p if isinstance(p, bytes) else str(p).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


class Cloner:
    """Copies every key of one real queue to more queue names with DUMP/RESTORE, streamed through
    `redis-cli --pipe` (C speed): `bull:<template>:*` -> `bull:<fmt % i>:*`."""

    def __init__(self, server, template, fmt, first=1):
        self.server, self.fmt, self.have = server, fmt, first
        head = f"bull:{template}:"
        keys = sorted(k.decode() for k in server.r.scan_iter(head + "*", count=1000))
        self.dumps = [(k[len(head):], server.r.dump(k)) for k in keys]
        if not self.dumps:
            raise SystemExit(f"template queue {template} has no keys")

    def grow(self, n):
        if n <= self.have:
            return
        p = subprocess.Popen(["redis-cli", "-p", str(self.server.port), "--pipe"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        batch = []
        for i in range(self.have, n):
            head = f"bull:{self.fmt % i}:"
            for suffix, d in self.dumps:
                batch.append(resp("RESTORE", head + suffix, 0, d, "REPLACE"))
            if len(batch) >= 5000:
                p.stdin.write(b"".join(batch))
                batch = []
        p.stdin.write(b"".join(batch))
        p.stdin.close()
        out = p.stdout.read().decode()
        p.wait()
        if p.returncode != 0 or "errors: 0" not in out:
            raise SystemExit(f"redis-cli --pipe failed: {out}")
        self.have = n

    def keys_per_queue(self):
        return len(self.dumps)


def bullmq_seed_one(port, queue):
    """One queue with 5 jobs in each of waiting, delayed, prioritized, completed and failed,
    made by the real bullmq library (tests/producers/bull.js)."""
    subprocess.run(["node", "bull.js", "bullmq", "seed-one", json.dumps({"port": port, "queue": queue})],
                   cwd=PRODUCERS, check=True, stdout=subprocess.DEVNULL)


def bullmq_add(port, queue, count=1):
    subprocess.run(["node", "bull.js", "bullmq", "add", json.dumps({"port": port, "queue": queue, "count": count})],
                   cwd=PRODUCERS, check=True, stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# Metrics text


SERIES = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^\n]*\})? (\S+)", re.M)


def series(body, name):
    """[(labels text, value)] of the series called exactly `name`."""
    out = []
    for m in re.finditer(rb"^" + re.escape(name.encode()) + rb"(\{[^\n]*\})? (\S+)", body, re.M):
        out.append(((m.group(1) or b"").decode(), float(m.group(2))))
    return out


def value(body, name, **labels):
    """Sum of the series called `name` whose labels include all of `labels`."""
    total, seen = 0.0, False
    for lbl, v in series(body, name):
        if all(f'{k}="{x}"' in lbl for k, x in labels.items()):
            total, seen = total + v, True
    return total if seen else None


def queues_in(body):
    """Distinct (system, prefix?, queue) label sets among redline_queue_* series."""
    return set(re.findall(rb'^redline_queue_[a-z_]+\{[^}\n]*?queue="([^"]*)"', body, re.M))


def series_count(body):
    """Series lines (not comments) in an exposition body, and those with a queue label."""
    total = queue = 0
    for line in body.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        total += 1
        if b'queue="' in line:
            queue += 1
    return total, queue


def median(v):
    return statistics.median(v) if v else float("nan")
