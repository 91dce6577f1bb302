"""Creates real queue data with the real Python libraries for redline's tests, and reads the
ground truth back through the same libraries' own APIs.

usage: python3 py_queues.py <rq|celery> <action> '<json options>'
  rq add:      {port, queue, count, fail, slow,     enqueue jobs; `at_front`, `result_ttl`,
                at_front, result_ttl, failure_ttl,  `failure_ttl` as RQ takes them;
                scheduled_in, depends_on, job_id}   `scheduled_in` seconds (negative: already
                                                    due); `depends_on` a job id (deferred)
  rq work:     {port, queue, simple, max_jobs}      a burst worker runs queued jobs, then exits
                                                    (`simple`: SimpleWorker, jobs run in-process)
  rq requeue:  {port, queue}                        requeue every failed job (RQ's API)
  rq truth:    {port, queue}                        JSON of Queue.count, the registries' counts,
                                                    the oldest waiting job's and the earliest
                                                    due scheduled job's time (Unix seconds)
  celery add:  {port, queue, count, priority,       send tasks through the Redis broker (`count`
                priorities, sep, steps, sleep,      of each of `priorities`); `sep` and `steps`
                countdown}                          are broker_transport_options; `sleep`: the
                                                    task sleeps that long; `countdown` as Celery
                                                    takes it
  celery work: {port, queue, seconds, sep, steps,   a real worker (solo pool, prefetch 1,
                exec}                               acks_late) consumes for `seconds`, or
                                                    until killed with `exec`
  celery truth:{port, queue, sep, steps}            JSON: kombu's own queue size (all
                                                    priority sub-queues), per sub-queue
                                                    lengths, unacked messages for the queue
"""
import datetime, json, os, subprocess, sys, time

lib, action = sys.argv[1], sys.argv[2]
o = {"port": 6379, "queue": "default", "count": 1, "seconds": 3}
o.update(json.loads(sys.argv[3] if len(sys.argv) > 3 else "{}"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def epoch(dt):
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def rq_main():
    import redis
    from rq import Queue, Worker, SimpleWorker
    from rq.job import Job
    from rq.registry import (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry,
                             ScheduledJobRegistry, DeferredJobRegistry, CanceledJobRegistry)
    r = redis.Redis(host="127.0.0.1", port=o["port"])
    q = Queue(o["queue"], connection=r)
    if action == "add":
        kw = {k: o[k] for k in ("at_front", "result_ttl", "failure_ttl", "depends_on", "job_id") if k in o}
        ids = []
        for i in range(o["count"]):
            fn = "py_tasks.fail" if o.get("fail") else "py_tasks.work"
            args = (i,)
            if o.get("slow"):
                fn, args, kw["job_timeout"] = "py_tasks.slow", (o["slow"],), o["slow"] + 1
            if "scheduled_in" in o:
                at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=o["scheduled_in"])
                job = q.enqueue_at(at, fn, *args, **kw)
            else:
                job = q.enqueue(fn, *args, **kw)
            ids.append(job.id)
        print(json.dumps(ids))
        return
    if action == "work":
        (SimpleWorker if o.get("simple") else Worker)([q], connection=r).work(
            burst=True, max_jobs=o.get("max_jobs"))
    elif action == "requeue":
        reg = FailedJobRegistry(queue=q)
        for job_id in reg.get_job_ids():
            reg.requeue(job_id)
    elif action == "truth":
        jobs = q.get_jobs()
        oldest = min((epoch(j.enqueued_at) for j in jobs if j.enqueued_at), default=None)
        sched = ScheduledJobRegistry(queue=q)
        now = time.time()
        due = [epoch(sched.get_scheduled_time(i)) for i in sched.get_job_ids()]
        due = min((t for t in due if t is not None and t <= now), default=None)
        print(json.dumps({
            "waiting": q.count,
            "active": StartedJobRegistry(queue=q).get_job_count(cleanup=False),
            "completed": FinishedJobRegistry(queue=q).get_job_count(cleanup=False),
            "failed": FailedJobRegistry(queue=q).get_job_count(cleanup=False),
            "delayed": sched.get_job_count(cleanup=False),
            "deferred": DeferredJobRegistry(queue=q).get_job_count(cleanup=False),
            "canceled": CanceledJobRegistry(queue=q).get_job_count(cleanup=False),
            "oldest_enqueued_at": oldest,
            "oldest_due_at": due,
            "workers": len(Worker.all(queue=q)),
        }))
        return
    print("ok")


def celery_main():
    from py_tasks import make_app
    app = make_app(o["port"], o.get("sep"), o.get("steps"))
    if action == "add":
        sent = []
        for priority in o.get("priorities", [o.get("priority")]):
            for i in range(o["count"]):
                app.send_task("py_tasks.add", args=(i, 1), kwargs={"sleep": o.get("sleep", 0.01)},
                              queue=o["queue"], priority=priority, countdown=o.get("countdown"))
                sent.append(time.time())
        print(json.dumps(sent))
    elif action == "work":
        # A real worker (solo pool: one process, so killing it leaves nothing behind).
        env = dict(os.environ, REDLINE_CELERY=json.dumps({"sep": o.get("sep"), "steps": o.get("steps")}))
        argv = [sys.executable, "-m", "celery", "-A", f"py_tasks:celery_app_{o['port']}", "worker",
                "-Q", o["queue"], "-P", "solo", "--prefetch-multiplier", "1", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        if o.get("exec"):
            # Runs until killed, as this very process.
            os.execve(sys.executable, argv, env)
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env)
        time.sleep(o["seconds"])
        p.terminate()
        p.wait(timeout=20)
        print("ok")
    elif action == "truth":
        with app.connection_for_read() as conn:
            ch = conn.default_channel
            client = ch.client
            subs = {str(s): client.llen(ch._q_for_pri(o["queue"], s)) for s in ch.priority_steps}
            unacked = 0
            for raw in client.hvals(ch.unacked_key):
                if json.loads(raw)[2] == o["queue"]:
                    unacked += 1
            print(json.dumps({"waiting": ch._size(o["queue"]), "subs": subs, "unacked": unacked,
                              "sep": ch.sep, "steps": list(ch.priority_steps)}))


{"rq": rq_main, "celery": celery_main}[lib]()
