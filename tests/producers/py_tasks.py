"""Task functions used by py_queues.py (RQ imports them by name, Celery workers load them)."""
import json, os, time


def work(i):
    time.sleep(0.01)
    return i


def slow(seconds):
    time.sleep(seconds)
    return seconds


def fail(i):
    raise RuntimeError(f"job {i} fails on purpose")


def make_app(port, sep=None, steps=None):
    """A Celery app on the Redis broker at `port`; `sep` and `steps` are kombu's
    broker_transport_options of the same names (kombu's defaults when None)."""
    from celery import Celery
    app = Celery("py_tasks", broker=f"redis://127.0.0.1:{port}/0")
    opts = {"queue_order_strategy": "priority"}
    if sep is not None:
        opts["sep"] = sep
    if steps is not None:
        opts["priority_steps"] = steps
    app.conf.broker_transport_options = opts
    # Late acks: a message stays in kombu's `unacked` hash while its task runs.
    app.conf.task_acks_late = True
    app.conf.worker_prefetch_multiplier = 1

    @app.task(name="py_tasks.add")
    def add(x, y, sleep=0.01):
        time.sleep(sleep)
        return x + y

    return app


def __getattr__(name):
    # `celery -A py_tasks:celery_app_<port>` builds the app for that port on demand, with the
    # transport options py_queues.py passes in REDLINE_CELERY.
    if name.startswith("celery_app_"):
        opts = json.loads(os.environ.get("REDLINE_CELERY") or "{}")
        return make_app(int(name.rsplit("_", 1)[1]), opts.get("sep"), opts.get("steps"))
    raise AttributeError(name)
