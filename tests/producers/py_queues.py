"""Creates real queue data with the real Python libraries for redline's tests.

usage: python3 py_queues.py <rq|celery> <add|work> '<json options>'
  rq add:      {port, queue, count, scheduled_in,   enqueue jobs (optionally scheduled; `slow`:
                fail, slow}                         each sleeps that many seconds)
  rq work:     {port, queue, simple}                a burst worker runs every queued job, then exits
                                                    (`simple`: SimpleWorker, jobs run in-process)
  celery add:  {port, queue, count, priority}       send tasks through the Redis broker
  celery work: {port, queue, seconds}               a real worker consumes for `seconds`
"""
import datetime, json, os, subprocess, sys, time

lib, action = sys.argv[1], sys.argv[2]
o = {"port": 6379, "queue": "default", "count": 1, "seconds": 3}
o.update(json.loads(sys.argv[3] if len(sys.argv) > 3 else "{}"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def rq_main():
    import redis
    from rq import Queue, Worker
    r = redis.Redis(host="127.0.0.1", port=o["port"])
    q = Queue(o["queue"], connection=r)
    if action == "add":
        for i in range(o["count"]):
            fn = "py_tasks.fail" if o.get("fail") else "py_tasks.work"
            if o.get("slow"):
                q.enqueue("py_tasks.slow", o["slow"], job_timeout=o["slow"] + 1)
            elif o.get("scheduled_in"):
                q.enqueue_in(datetime.timedelta(seconds=o["scheduled_in"]), fn, i)
            else:
                q.enqueue(fn, i)
    elif action == "work":
        from rq import SimpleWorker
        (SimpleWorker if o.get("simple") else Worker)([q], connection=r).work(burst=True)


def celery_main():
    from py_tasks import make_app
    app = make_app(o["port"])
    if action == "add":
        for i in range(o["count"]):
            app.send_task("py_tasks.add", args=(i, 1), queue=o["queue"], priority=o.get("priority"))
    elif action == "work":
        # A real worker process, stopped after `seconds`.
        p = subprocess.Popen([sys.executable, "-m", "celery", "-A", f"py_tasks:celery_app_{o['port']}", "worker",
                              "-Q", o["queue"], "-c", "1", "--without-gossip", "--without-mingle",
                              "--without-heartbeat", "-l", "WARNING"],
                             cwd=os.path.dirname(os.path.abspath(__file__)), stdout=subprocess.DEVNULL)
        time.sleep(o["seconds"])
        p.terminate()
        p.wait(timeout=20)


{"rq": rq_main, "celery": celery_main}[lib]()
print("ok")
