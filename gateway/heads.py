"""A request's head (start line and headers) within MAX_HEADER_BYTES, refused with 431 as it arrives.

uvicorn parses HTTP/1.1 with httptools, and neither bounds a head: httptools joins a header's
value in memory however long it grows, and uvicorn joins the request target the same way (a
150 MiB header held ~155 MB until the request was answered 200). h11's
`max_incomplete_event_size` is the bound uvicorn offers, and only for h11, which parses
several times slower; uvicorn declined a header limit for httptools (encode/uvicorn#1684,
#157: "httptools does have a mechanism ... but we can't change the value"). So the protocol
here counts the bytes it feeds the parser while a head is incomplete and, past the limit,
answers 431 and closes the connection instead of feeding any more. Body bytes are not
counted (BodyLimit bounds those), and the count starts again with each request, so
keep-alive and pipelined requests each get the whole limit.

A client is usually still sending when it is refused; closing a socket with unread bytes makes
the kernel send a reset, which can reach the client before it reads the 431. So the answer is
followed by a half-close (FIN), what the client still sends is read and dropped, and the
connection closes when the client closes its side or after LINGER_SECONDS (as nginx's
lingering close).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

TOO_LARGE = 431
LINGER_SECONDS = 5.0


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a head over `max_head_bytes` before holding more of it."""

    max_head_bytes: int  # set by head_limited

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._head_open = False  # between a message's first byte and its headers' end
        self._head_bytes = 0
        self._message_ended = False  # during this feed: where the next head starts is unknown
        self._refusal_pending = False  # over the limit behind a response still being sent
        self._refused = False  # answered 431: what arrives now is dropped unread

    def data_received(self, data: bytes) -> None:
        if self._refusal_pending or self._refused or self.transport.is_closing():
            return
        self._message_ended = False
        super().data_received(data)
        if not self._head_open:
            return
        if self._message_ended:
            # The previous message ended inside this chunk, so only part of it is the new
            # head: count what the parser has handed over. What it still holds of one
            # unfinished header is at most this chunk, and the next chunk is counted whole.
            self._head_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        else:
            self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_ended = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_pending:
            self._send_431()

    def _refuse(self) -> None:
        self.logger.warning("Request head larger than %d bytes refused.", self.max_head_bytes)
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier request on this connection is still being answered: stop reading,
            # let its response finish, then answer this one (on_response_complete).
            self._refusal_pending = True
            self.flow.pause_reading()
            self.pipeline.clear()
            return
        self._send_431()

    def _send_431(self) -> None:
        message = f"The request's headers are larger than the limit of {self.max_head_bytes} bytes.".encode()
        head = [STATUS_LINE[TOO_LARGE]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: text/plain; charset=utf-8\r\n",
                 b"content-length: %d\r\n" % len(message), b"connection: close\r\n", b"\r\n"]
        self._refused = True
        self.transport.write(b"".join(head) + message)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def head_limited(max_bytes: int) -> type[HeadLimitedProtocol]:
    """The protocol class to give uvicorn's `Config(http=...)`; uvicorn makes one per connection."""
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_bytes})
