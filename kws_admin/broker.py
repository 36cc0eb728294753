"""The embedded broker: kombu's filesystem transport, safe against torn message files.

kombu's writer opens the message file under its final name and only then writes it, and
its reader takes no lock: a consumer polling at that moment moves the empty or half
written file away and ``json.loads`` fails, which the Celery worker treats as an
unrecoverable error and dies (kombu issue #1551). Here:

* a writer writes each message to a dot-prefixed ``.tmp`` name in the queue folder (which
  no reader lists as a message), then renames it to its final name with ``os.replace``,
  atomic on POSIX: a final name always holds a whole message;
* a reader claims a file by renaming it, and a file it cannot decode (empty, torn, not
  JSON, not a kombu message) is logged once and moved to ``rejected_folder`` (default:
  ``rejected`` beside the queue folder); the channel goes on with the next message.

Every other behaviour is kombu's: file names and their order, the exchange tables in
``control_folder``, ``store_processed``/``processed_folder``, ``polling_interval``; only
kombu's process-wide cache of the bindings it wrote is kept per control folder.

Use it with ``broker_url = "filesystem://"`` and
``broker_transport = "kws_admin.broker:Transport"`` (kombu 5.7 refuses an import path as a
URL scheme). The transport option ``kws_torn_every`` (tests only, off unless set) writes
every N-th message of a connection torn, straight under its final name, so a test can show
that torn files are set aside.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import uuid
from json import JSONDecodeError
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)

# Suffixes of the names a file has while it is not a message yet (being written) or any
# more (claimed by a reader). With the leading dot, kombu's own test
# ``name.partition(".")[2] == f"{queue}.msg"`` never matches them either.
TEMP_SUFFIX = ".tmp"
CLAIMED_SUFFIX = ".claimed"


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes and a reader that survives bad files."""

    @cached_property
    def rejected_folder(self) -> str:
        default = Path(self.data_folder_in).parent / "rejected"
        return str(self.transport_options.get("rejected_folder", default))

    @cached_property
    def torn_every(self) -> int:
        return max(0, int(self.transport_options.get("kws_torn_every") or 0))

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue``: write a temporary name, then rename it."""
        # kombu's name: its reader, _size and _purge select and order files by it.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        data = str_to_bytes(dumps(payload))
        if self.torn_every and next(self.connection.written) % self.torn_every == 0:
            self._put_torn(final, data)
            return
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

    def _put_torn(self, final: str, data: bytes) -> None:
        """Fault injection: half the message under its final name, as kombu's race leaves it."""
        logger.debug("Broker: writing message file %s torn (kws_torn_every)", final)
        try:
            with open(final, "wb") as f:
                f.write(data[: len(data) // 2])
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> dict[str, Any]:
        """Get the next message from ``queue``; set aside any file that is not one."""
        queue_find = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            # only handle messages for the requested queue
            if filename.partition(".")[2] != queue_find:
                continue
            claimed = os.path.join(self.data_folder_in, f".{filename}{CLAIMED_SUFFIX}")
            try:
                # A rename within the folder is atomic: of several consumers exactly one
                # wins. (kombu moves to the temp folder, a copy when that is tmpfs.)
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except OSError:
                continue  # another consumer took it, or it was purged meanwhile
            try:
                with open(claimed, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                self._reject(claimed, filename, f"unreadable ({type(exc).__name__})")
                continue
            message, error = self._decode(raw)
            if error is not None:
                self._reject(claimed, filename, error)
                continue
            self._done(claimed, filename)
            return message
        raise Empty()

    def _shape_error(self, message: Any) -> str | None:
        """Why a decoded payload is not a message the virtual channel's Message() takes."""
        if not isinstance(message, dict):
            return f"not a message object ({type(message).__name__})"
        properties = message.get("properties")
        if not isinstance(properties, dict):
            return "no properties"
        if "delivery_tag" not in properties:
            return "no delivery tag"
        if not isinstance(message.get("headers") or {}, dict):
            return "headers are not an object"
        body = message.get("body")
        if not isinstance(body, str | None):
            return "body is not a string"
        try:
            # Message() decodes it in the consumer's callback, where a failure is fatal.
            if body:
                self.decode_body(body, properties.get("body_encoding"))
        except Exception as exc:  # a codec's own error, or no such codec
            return f"body does not decode ({type(exc).__name__})"
        return None

    def _decode(self, raw: bytes) -> tuple[Any, str | None]:
        """The message in ``raw``, or why there is none (never quoting the content)."""
        if not raw.strip():
            return None, "empty"
        try:
            message = loads(bytes_to_str(raw))
        except UnicodeDecodeError:
            return None, "not UTF-8"
        except JSONDecodeError as exc:
            return None, f"not JSON (line {exc.lineno} column {exc.colno})"
        except Exception as exc:  # kombu's object hooks: any failure means a bad file
            return None, f"not decodable ({type(exc).__name__})"
        return message, self._shape_error(message)

    def _done(self, claimed: str, filename: str) -> None:
        """Keep a delivered file in the processed folder if asked to, else delete it."""
        try:
            if self.store_processed:
                shutil.move(claimed, os.path.join(self.processed_folder, filename))
            else:
                os.unlink(claimed)
        except OSError as exc:
            # The message is read: deliver it rather than fail over its leftover file.
            logger.warning(
                "Broker: cannot remove delivered message file %s: %s", filename, exc.strerror
            )

    def _reject(self, claimed: str, filename: str, reason: str) -> None:
        """Move a bad file aside, once: it is claimed, so no reader lists it again."""
        target = os.path.join(self.rejected_folder, filename)
        try:
            os.makedirs(self.rejected_folder, exist_ok=True)
            shutil.move(claimed, target)
        except OSError as exc:
            logger.warning(
                "Broker: message file %s is %s; cannot move it to %s (%s), dropping it",
                filename,
                reason,
                self.rejected_folder,
                exc.strerror,
            )
            try:
                os.unlink(claimed)
            except OSError:
                pass
            return
        logger.warning(
            "Broker: message file %s is %s; moved it to %s", filename, reason, self.rejected_folder
        )


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
        # Counts this connection's written messages, for kws_torn_every.
        self.written = itertools.count(1)
