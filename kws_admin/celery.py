"""The node's Celery app: the worker and beat processes of a node run this."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

app = Celery("kws_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
