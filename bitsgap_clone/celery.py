from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")

app = Celery("bitsgap_clone")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_hygiene(task=None, **kwargs) -> None:
    """Around each task, what Django does around each request: close a connection older than
    CONN_MAX_AGE or one that failed, keep the rest (settings.CELERY_DB_REUSE_MAX). Not for a
    task run eagerly (``apply``) inside the caller's transaction, as Celery's fixup does not."""
    from django.db import close_old_connections

    if task is None or not getattr(task.request, "is_eager", False):
        close_old_connections()
