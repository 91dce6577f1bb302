#!/usr/bin/env python3
"""redline's PostgreSQL collector beside Debian's prometheus-postgres-exporter, on one spawned
PostgreSQL instance (127.0.0.1 only) with pg_stat_statements and 8 databases.

Each exporter connects as its own pg_monitor role, so pg_stat_statements attributes queries to
it. Per exporter, measured alone: scrape latency (p50/p99 over N sequential scrapes), RSS, SQL
statements and new server sessions per scrape, and statements per second with nobody scraping.
Usage: bench/postgres.py [--scrapes N]   (bench/run-postgres.sh installs and builds first)
"""
import argparse, glob, http.client, os, shutil, signal, subprocess, tempfile, time

from common import free_port, rss_mib, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Pg:
    def __init__(self):
        self.dir = tempfile.mkdtemp()
        shutil.chown(self.dir, "postgres", "postgres")
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/initdb", "-A", "trust", "-U", "postgres",
                        "-D", data], check=True, stdout=subprocess.DEVNULL)
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                f"-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all")
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/pg_ctl", "-D", data, "-w", "-o", opts,
                        "-l", os.path.join(self.dir, "log"), "start"], check=True, stdout=subprocess.DEVNULL)
        self.data = data

    def sql(self, q, db="postgres"):
        out = subprocess.run(["psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres", "-d", db, "-tAX",
                              "-c", q], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate",
                        "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def calls(self, role):
        return float(self.sql(f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r "
                              f"ON r.oid = s.userid WHERE r.rolname = '{role}'") or 0)

    def sessions(self):
        # Every psql call here is itself one session; callers subtract theirs.
        return float(self.sql("SELECT sum(sessions) FROM pg_stat_database"))


def measure(name, proc, port, pg, role, n):
    try:
        wait_http(port)
        time.sleep(2.5)
        c0 = pg.calls(role)
        time.sleep(5)
        idle = (pg.calls(role) - c0) / 5
        s0, q0 = pg.sessions(), pg.calls(role)
        lat = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            t = time.perf_counter()
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            lat.append(time.perf_counter() - t)
        q1 = pg.calls(role)
        s1 = pg.sessions()
        lat.sort()
        # pg.calls and pg.sessions each opened one psql session: 3 between s0 and s1.
        return dict(name=name, p50=lat[n // 2] * 1e3, p99=lat[int(n * 0.99) - 1] * 1e3, rss=rss_mib(proc.pid),
                    queries=(q1 - q0) / n, sessions=max(0.0, s1 - s0 - 3) / n, idle=idle)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=300)
    args = ap.parse_args()
    pg = Pg()
    try:
        pg.sql("CREATE EXTENSION pg_stat_statements")
        for role in ("redline_bench", "pgexp_bench"):
            pg.sql(f"CREATE ROLE {role} LOGIN; GRANT pg_monitor TO {role}")
        for i in range(6):
            pg.sql(f"CREATE DATABASE bench{i}")
        results = []
        lport = free_port()
        cfg = os.path.join(pg.dir, "redline.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: 127.0.0.1:{lport}\ncollection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\n"
                    f"postgres:\n  - name: bench\n    dsn: postgres://redline_bench@127.0.0.1:{pg.port}/postgres\n")
        p = subprocess.Popen([os.path.join(ROOT, "target", "release", "redline"), "run", "--config", cfg],
                             stderr=subprocess.DEVNULL)
        results.append(measure("redline", p, lport, pg, "redline_bench", args.scrapes))

        eport = free_port()
        env = dict(os.environ, DATA_SOURCE_NAME=f"postgresql://pgexp_bench@127.0.0.1:{pg.port}/postgres?sslmode=disable")
        p = subprocess.Popen(["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{eport}",
                              "--auto-discover-databases"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results.append(measure("postgres_exporter (--auto-discover-databases)", p, eport, pg, "pgexp_bench",
                               args.scrapes))
    finally:
        pg.stop()
    print(f"{args.scrapes} sequential scrapes; PostgreSQL with 8 databases; redline collects every 1 s, "
          f"postgres_exporter on every scrape")
    print("| exporter | p50 ms | p99 ms | RSS MiB | SQL statements / scrape | new sessions / scrape | statements/s idle |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rss']:.1f} | {r['queries']:.2f} | "
              f"{r['sessions']:.2f} | {r['idle']:.1f} |")


if __name__ == "__main__":
    main()
