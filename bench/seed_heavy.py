#!/usr/bin/env python3
"""Heavy queue data for the SLOWLOG cases of bench/scale.py, written by the real libraries.

usage: python3 bench/seed_heavy.py <case> PORT
  celery-unacked  10,000 ~3 KB unacked Celery messages: 100 sent by the real Celery producer and
                  taken by kombu's own Channel.basic_get(no_ack=False), so kombu writes them to
                  `unacked` and `unacked_index` itself; 9,900 copies of kombu's last entry, each
                  with a fresh delivery tag and task id. The process exits without closing, as a
                  worker killed mid-prefetch would, so kombu does not restore them.
  rq-data         a real RQ job whose `data` field is 50 MiB (incompressible argument), at the
                  head of queue `big`, then 3 ordinary jobs.
  rq-enqueued-at  a real RQ job at the head of queue `big` whose `enqueued_at` was then
                  overwritten with 50 MiB (garbage in a field redline reads), then 3 ordinary jobs.
Prints one JSON line describing what it wrote.
"""
import json, os, sys

PRODUCERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "producers")
sys.path.insert(0, PRODUCERS)

MIB = 1024 * 1024


def celery_unacked(port, count=10000, real=100, blob_len=960):
    import time, uuid
    import redis
    from py_tasks import make_app
    app = make_app(port)
    blob = "m" * blob_len  # base64 in the body plus ~2 KB of headers: ~3 KB per unacked entry
    with app.producer_or_acquire() as producer:
        for i in range(real):
            app.send_task("py_tasks.add", args=(blob, i), queue="celery", producer=producer)
    conn = app.connection_for_read()
    ch = conn.default_channel
    taken = sum(ch.basic_get("celery", no_ack=False) is not None for _ in range(real))
    # The other entries are copies of the last one kombu wrote, each with its own delivery tag and
    # task id, as kombu would write them (the real path costs ~7 ms per message on a busy machine).
    r = redis.Redis(port=port)
    tag, value = next(iter(r.hscan_iter("unacked", count=1)))
    entry = json.loads(value)
    p = r.pipeline(transaction=False)
    for i in range(count - real):
        new_tag, task_id = str(uuid.uuid4()), str(uuid.uuid4())
        entry[0]["properties"]["delivery_tag"] = new_tag
        entry[0]["properties"]["correlation_id"] = task_id
        entry[0]["headers"]["id"] = task_id
        p.hset("unacked", new_tag, json.dumps(entry))
        p.zadd("unacked_index", {new_tag: time.time()})
        if i % 1000 == 999:
            p.execute()
    p.execute()
    sizes = [r.hstrlen("unacked", k) for k in r.hkeys("unacked")[:200]]
    print(json.dumps({"written_by_kombu": taken, "unacked": r.hlen("unacked"), "index": r.zcard("unacked_index"),
                      "entry_bytes_avg": round(sum(sizes) / max(1, len(sizes)))}), flush=True)
    # No close: kombu would put its messages back (restore_unacked) on a clean close.
    os._exit(0)


def rq_big(port, field):
    import redis
    from rq import Queue
    r = redis.Redis(port=port)
    q = Queue("big", connection=r)
    if field == "data":
        job = q.enqueue("py_tasks.work", os.urandom(50 * MIB))
    else:
        job = q.enqueue("py_tasks.work", 0)
        r.hset(job.key, "enqueued_at", "2" * (50 * MIB))
    for i in range(3):
        q.enqueue("py_tasks.work", i)
    print(json.dumps({"job": job.id, "field": field, "field_bytes": r.hstrlen(job.key, field),
                      "queue_length": r.llen(q.key)}), flush=True)


def main():
    case, port = sys.argv[1], int(sys.argv[2])
    if case == "celery-unacked":
        celery_unacked(port)
    elif case == "rq-data":
        rq_big(port, "data")
    elif case == "rq-enqueued-at":
        rq_big(port, "enqueued_at")
    else:
        raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main()
