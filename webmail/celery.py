"""The Celery application: sync tasks, write-back and the beat safety nets."""

import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")

app = Celery("webmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["webmail.sync"])


class Watchers(bootsteps.StartStopStep):
    """Runs this worker's IMAP watchers (see webmail.sync.watchers) beside its pool."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.pool = None

    def start(self, worker):
        from django.conf import settings

        if settings.WATCHERS:
            from webmail.sync.watchers import WatcherPool

            self.pool = WatcherPool()
            self.pool.start()

    def stop(self, worker):
        if self.pool is not None:
            self.pool.stop()


app.steps["worker"].add(Watchers)
