"""The embedded broker: kombu's filesystem transport, safe against torn message files.

kombu's writer opens the message file under its final name and only then writes it, and
its reader takes no lock: a consumer polling at that moment moves the empty or half
written file away and ``json.loads`` fails, which the Celery worker treats as an
unrecoverable error and dies (kombu issue #1551). Here a writer writes each message to a
dot-prefixed ``.tmp`` name in the queue folder (which no reader lists as a message), then
renames it to its final name with ``os.replace``, atomic on POSIX: a final name always
holds a whole message.

Every other behaviour is kombu's: file names and their order, the exchange tables in
``control_folder``, ``store_processed``/``processed_folder``, ``polling_interval``; only
kombu's process-wide cache of the bindings it wrote is kept per control folder.

Use it with ``broker_url = "filesystem://"`` and
``broker_transport = "kws_admin.broker:Transport"`` (kombu 5.7 refuses an import path as a
URL scheme).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)

# Suffix of the name a file has while it is not a message yet (being written). With the
# leading dot, kombu's reader test ``name.partition(".")[2] == f"{queue}.msg"`` never
# matches it.
TEMP_SUFFIX = ".tmp"


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes."""

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue``: write a temporary name, then rename it."""
        # kombu's name: its reader, _size and _purge select and order files by it.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        data = str_to_bytes(dumps(payload))
        temp = os.path.join(self.data_folder_out, f".{name}{TEMP_SUFFIX}")
        try:
            with open(temp, "wb") as f:
                f.write(data)
            os.replace(temp, final)
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel
    # kombu keeps one BrokerState per process: the bindings it has written, so it skips
    # writing them again. A second connection to another control folder would then never
    # get its exchange tables; keep one state per control folder instead.
    _states: dict[str, virtual.BrokerState] = {}
    _states_lock = threading.Lock()

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        folder = os.path.abspath(client.transport_options.get("control_folder", "control"))
        with self._states_lock:
            self.state = self._states.setdefault(folder, virtual.BrokerState())
