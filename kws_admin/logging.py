"""A logging filter that stamps every record with this node's name and process role."""

import logging

from django.conf import settings


class NodeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.node = settings.NODE_NAME
        record.role = settings.PROCESS_ROLE
        return True
