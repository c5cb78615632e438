"""redis-py reply parsers with a size cap: a hostile server cannot make us allocate gigabytes.

redis-py (hiredis or its pure-Python parser) buffers a reply until it is complete, whatever
length its header announces. A whole reply must already arrive within ``socket_timeout``
(redis-py's asyncio client times the whole ``read_response``), so a server that trickles a
``$2000000000`` bulk fails on time; but one that *floods* it fills memory at loopback speed
(1.3 GB in 5 s, measured) before the timeout fires. These parsers refuse a reply once it
exceeds ``max_reply`` bytes (the storage URL option, default :data:`DEFAULT_MAX_REPLY`):

* hiredis: the bytes fed to the reader since the last complete reply are counted;
* pure Python (no hiredis): a bulk whose announced length exceeds the cap is refused from
  its header, before anything is read.

The refusal is an :class:`redis.exceptions.InvalidResponse` (not retried; the connection is
dropped) naming the limit and the option.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from redis.exceptions import ConnectionError, InvalidResponse
from redis.utils import HIREDIS_AVAILABLE

#: Largest reply accepted by default (bytes): far above anything distsched reads (a page
#: of tasks, a batch of results, every job of a large deployment), far below gigabytes.
DEFAULT_MAX_REPLY = 256 * 1024 * 1024


def _too_large(limit: int, size: str) -> InvalidResponse:
    return InvalidResponse(
        f"reply of {size} exceeds the limit of {limit} bytes (storage option max_reply); "
        f"refused - is this a Redis server?"
    )


class CappedHiredisParser(_AsyncHiredisParser):
    """hiredis, refusing a reply once more than ``max_reply`` bytes of it were received."""

    max_reply = DEFAULT_MAX_REPLY
    __slots__ = ("_pending",)

    def __init__(self, socket_read_size: int) -> None:
        super().__init__(socket_read_size)
        self._pending = 0

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)
        self._pending = 0

    async def read_from_socket(self) -> bool:
        stream: Any = self._stream
        buffer = await stream.read(self._read_size)
        if not buffer or not isinstance(buffer, bytes):
            raise ConnectionError("Connection closed by server.") from None
        self._pending += len(buffer)
        if self._pending > self.max_reply:
            raise _too_large(self.max_reply, f"more than {self._pending} bytes")
        reader: Any = self._reader
        reader.feed(buffer)
        return True

    async def read_response(self, disable_decoding: bool = False, push_request: bool = False) -> Any:
        response = await super().read_response(disable_decoding=disable_decoding, push_request=push_request)
        # What is still buffered belongs to the next reply: at most one read, not counted.
        self._pending = 0
        return response


class CappedRESP3Parser(_AsyncRESP3Parser):
    """The pure-Python parser, refusing a bulk whose announced length exceeds ``max_reply``."""

    max_reply = DEFAULT_MAX_REPLY

    async def _read(self, length: int) -> bytes:
        if length > self.max_reply:
            raise _too_large(self.max_reply, f"{length} bytes")
        return await super()._read(length)  # type: ignore[no-any-return]


@cache
def parser_class(max_reply: int = DEFAULT_MAX_REPLY) -> type[Any]:
    """The capped parser for ``max_reply`` (hiredis when it is installed)."""
    base: type[Any] = CappedHiredisParser if HIREDIS_AVAILABLE else CappedRESP3Parser
    if max_reply == base.max_reply:
        return base
    return type(base.__name__, (base,), {"max_reply": max_reply, "__slots__": ()})


__all__ = ["DEFAULT_MAX_REPLY", "CappedHiredisParser", "CappedRESP3Parser", "parser_class"]
