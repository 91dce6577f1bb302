"""Task functions used by py_queues.py (RQ imports them by name, Celery workers load them)."""
import time


def work(i):
    time.sleep(0.01)
    return i


def slow(seconds):
    time.sleep(seconds)
    return seconds


def fail(i):
    raise RuntimeError(f"job {i} fails on purpose")


def make_app(port):
    from celery import Celery
    app = Celery("py_tasks", broker=f"redis://127.0.0.1:{port}/0")
    app.conf.broker_transport_options = {"priority_steps": [0, 3, 6, 9], "queue_order_strategy": "priority"}
    app.conf.task_acks_late = True

    @app.task(name="py_tasks.add")
    def add(x, y):
        time.sleep(0.01)
        return x + y

    return app


def __getattr__(name):
    # `celery -A py_tasks:celery_app_<port>` builds the app for that port on demand.
    if name.startswith("celery_app_"):
        return make_app(int(name.rsplit("_", 1)[1]))
    raise AttributeError(name)
