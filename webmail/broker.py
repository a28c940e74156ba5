"""kombu's filesystem transport (the embedded broker of `make run`), with each message written
atomically: to a temporary name first, then renamed into place.

kombu's own writer creates the message file and then fills it, while a worker may already be
reading it: the worker then reads an empty file, fails to decode it and the message is lost.
A rename is atomic, so a worker sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # Not "<queue>.msg" at the end, so readers skip it until it is complete.
        temporary = final + ".part"
        try:
            with open(temporary, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())  # a click queued here survives a power cut
            os.replace(temporary, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self):
        # Folders, not a host: without this kombu warns "No hostname was supplied" at every
        # connection, in every management command that queues a task.
        return {}
