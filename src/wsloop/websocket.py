"""One WebSocket connection on a loop: the sans-I/O core, a transport and a
handler, tied together.

Bytes flow one way: ``Transport`` -> :meth:`WebSocket.data_received` ->
``protocol.receive_data`` -> events -> handler callbacks; and sends go back
down: :meth:`WebSocket.send` -> ``protocol.send_*`` -> ``data_to_send`` ->
``Transport.write``. This class adds what needs a clock or a thread: the
keepalive and close timers, marshalling calls made from other threads onto
the loop, and shielding the loop from handler exceptions.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from .loops import Handle, Loop
from .options import ConnectionOptions
from .protocol import (
    Closed,
    Connection,
    HandshakeError,
    HandshakeFailed,
    InvalidStateError,
    Message,
    Opened,
    Ping,
    Pong,
    RequestReceived,
    ServerConnection,
    State,
)
from .protocol.frames import encode_close_payload

if TYPE_CHECKING:
    from .handler import HandlerLike
    from .protocol.handshake import Request, Response
    from .transport import Transport

__all__ = ["WebSocket"]

logger = logging.getLogger("wsloop")
# Final: a C static when compiled (once per send); typed object so the
# thread id is compared as it comes, not converted to a C int and back.
get_ident: Final[Callable[[], object]] = threading.get_ident


def offer_shared_all(
    connections: list[WebSocket], data: str | bytes, frames: dict[tuple[object, ...], bytes]
) -> tuple[int, list[WebSocket] | None]:
    """Loop thread only: :meth:`WebSocket.offer_shared` to each of
    ``connections`` (a broadcast, a broker's fan-out), in one call from the
    caller rather than one per connection. Returns how many got it, and the
    connections skipped for being over their ``write_limit`` (None if none),
    for the caller's policy."""
    sent = 0
    slow: list[WebSocket] | None = None
    for ws in connections:
        try:
            offered = ws.offer_shared(data, frames)
        except InvalidStateError:
            continue
        if offered > 0:
            sent += 1
        elif offered < 0:
            if slow is None:
                slow = [ws]
            else:
                slow.append(ws)
    return sent, slow


class Owner(Protocol):
    """The client or server a connection reports to (on the loop's thread)."""

    def _ws_request(self, ws: WebSocket, event: RequestReceived) -> None: ...

    def _ws_opened(self, ws: WebSocket) -> None: ...

    def _ws_refused(self, ws: WebSocket, error: HandshakeError) -> None: ...

    def _ws_lost(self, ws: WebSocket) -> None: ...


class WebSocket:
    """An open (or opening) WebSocket connection.

    :meth:`send`, :meth:`ping`, :meth:`close`, :meth:`pause_reading` and
    :meth:`resume_reading` may be called from any thread; everything else
    happens on the loop's thread.
    """

    def __init__(
        self,
        loop: Loop,
        protocol: Connection,
        handler: HandlerLike,
        options: ConnectionOptions,
        owner: Owner,
    ) -> None:
        self.loop = loop
        self.protocol = protocol
        self._handler = handler
        # The per-message callback, looked up once, not once per message.
        self._on_message: Callable[[WebSocket, str | bytes], object] = handler.on_message
        self.options = options
        # Read on every flush and by the asyncio front-end on every send: a
        # native int here, not an attribute lookup on the (frozen) options.
        self._write_limit = options.write_limit
        self.owner = owner
        self.transport: Transport | None = None
        self._latency: float | None = None
        #: Free for the application's use (a user id, a subscription list...).
        self.data: dict[str, Any] = {}
        self._opened = False
        self._lost = False
        self._processing = False
        self._flush_pending = False
        self._sent_since_input = False
        self._paused = False  # the application paused reading
        # Pong bytes the peer's pings asked for since this end's send buffer
        # was last within write_limit (an upper bound: the core answers only
        # the latest ping past a few), and whether reading is held because
        # they grew past the limit: see _hold_reading.
        self._answered = 0
        self._held = False
        self._pings: dict[bytes, tuple[float, Callable[[float], object] | None]] = {}
        self._ka_ping: bytes | None = None
        self._ka_timer: Handle | None = None
        self._ka_deadline: Handle | None = None
        self._close_timer: Handle | None = None
        self._marshalled = 0  # bytes sent from other threads, not yet on the loop
        self._drain_owed = False  # a sender from another thread waits for on_writable
        self._marshal_lock = threading.Lock()
        self._close_callbacks: list[Callable[[WebSocket], object]] | None = None

    # -- what the application sees ------------------------------------------

    @property
    def handler(self) -> HandlerLike:
        """The handler this connection's events go to."""
        return self._handler

    @handler.setter
    def handler(self, handler: HandlerLike) -> None:
        self._handler = handler
        self._on_message = handler.on_message

    @property
    def state(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed``."""
        if self._lost:
            return "closed"
        state = self.protocol.state
        return "closing" if state is State.CLOSED else state.value

    @property
    def open(self) -> bool:
        """True while the connection is open."""
        return self.state == "open"

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._lost

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last answered ping, in seconds."""
        return self._latency

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        return self.protocol.subprotocol

    @property
    def extensions(self) -> list[str]:
        """The extensions agreed in the handshake (``permessage-deflate``...)."""
        return self.protocol.extensions

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        return self.transport.peername if self.transport is not None else None

    @property
    def local_address(self) -> Any:
        """This end's address, as the socket reports it."""
        return self.transport.sockname if self.transport is not None else None

    @property
    def request(self) -> Request | None:
        """The handshake request (the server's view: what the client sent)."""
        return self.protocol.request  # type: ignore[attr-defined, no-any-return]

    @property
    def response(self) -> Response | None:
        """The handshake response (the client's view: what the server sent)."""
        return getattr(self.protocol, "response", None)

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closing or closed (1006: no close frame)."""
        closed = self.protocol.closed
        return closed.code if closed is not None else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closing or closed."""
        closed = self.protocol.closed
        return closed.reason if closed is not None else None

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet handed to the kernel (like the browser's
        ``bufferedAmount``), counting sends still on their way from other
        threads."""
        transport = self.transport
        queued = self.protocol.bytes_to_send
        return self._marshalled + queued + (transport.buffered if transport is not None else 0)

    def send(self, data: str | bytes | bytearray | memoryview, *, compress: bool = True) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        Never blocks: what the socket cannot take now is buffered; watch
        :attr:`buffered_amount` and ``on_writable`` to pace large sends.
        Raises :class:`~wsloop.protocol.InvalidStateError` if not open.
        """
        kind = type(data)  # exact types first: a tuple isinstance costs more
        if (
            kind is not bytes
            and kind is not str
            and not isinstance(data, (str, bytes, bytearray, memoryview))
        ):
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        if self.loop._thread_id == get_ident():  # Loop.in_loop_thread, inlined: once per send
            self._send(data, compress)
            return
        if self.state != "open":
            raise InvalidStateError(f"cannot send: the connection is {self.state}")
        if isinstance(data, str):
            # Encoded here, so a str that cannot be (a lone surrogate) fails
            # in the caller's thread, not later on the loop's.
            payload, text = data.encode("utf-8"), True
        else:
            payload, text = bytes(data), False  # the caller may reuse its buffer
        size = len(payload)
        with self._marshal_lock:
            self._marshalled += size
        self.loop.call_soon_threadsafe(self._send_marshalled, payload, text, compress, size)

    def send_shared(self, data: str | bytes, frames: dict[tuple[object, ...], bytes]) -> None:
        """Loop thread only: send ``data`` as one of many connections sending
        the same message (a broadcast, a broker's fan-out), written at once.
        Its frame is built once per ``protocol.share_key`` and kept in
        ``frames`` (one dict per message) for the others with that key; a
        connection whose frames are its own (a compression context kept
        between messages) encodes it itself."""
        protocol = self.protocol
        key = protocol.share_key
        if key is None:
            if isinstance(data, str):
                protocol.send_text(data)
            else:
                protocol.send_binary(data)
            self._flush()
            return
        frame = frames.get(key)
        if frame is None:
            frame = frames[key] = protocol.prepare_shared(data)
        transport = self.transport
        if protocol.bytes_to_send or transport is None or protocol.state is not State.OPEN:
            protocol.send_shared(frame)  # behind what is queued (or raises: not open)
            self._flush()
        else:
            # Nothing queued before it: the frame goes to the transport as
            # it is, without a trip through the protocol's queue (what a
            # fan-out does for every subscriber of every message).
            transport.write(frame)

    def offer_shared(self, data: str | bytes, frames: dict[tuple[object, ...], bytes]) -> int:
        """Loop thread only: :meth:`send_shared` for a fan-out that never
        waits on a slow connection, its checks made here in one call. Returns
        1 once sent; 0 if the connection is not open (nothing sent); -1 if
        its send buffer is over ``write_limit`` (nothing sent: the caller's
        policy skips or closes it)."""
        if self._lost or self.protocol.state is not State.OPEN:
            return 0
        if self.buffered_amount > self._write_limit:
            return -1
        self.send_shared(data, frames)
        return 1

    def add_close_callback(self, fn: Callable[[WebSocket], object]) -> None:
        """Loop thread only: call ``fn(ws)`` once this connection is closed
        (after ``on_close``), or at once if it already is. What a broker
        uses to drop a closed connection's subscriptions."""
        if self._lost:
            fn(self)
            return
        if self._close_callbacks is None:
            self._close_callbacks = []
        self._close_callbacks.append(fn)

    def ping(
        self, data: bytes | str | None = None, callback: Callable[[float], object] | None = None
    ) -> None:
        """Send a ping (``data``: its payload, at most 125 bytes; random if
        None). ``callback(rtt)`` runs on the loop's thread when its pong
        arrives, with the round trip in seconds: what the asyncio and
        blocking ``ping`` return."""
        payload = (
            os.urandom(4)
            if data is None
            else data.encode()
            if isinstance(data, str)
            else bytes(data)
        )
        if len(payload) > 125:
            raise ValueError(f"ping payload is {len(payload)} bytes; at most 125 are allowed")
        if self.state != "open":
            raise InvalidStateError(f"cannot ping: the connection is {self.state}")
        self.loop.call_in_loop(self._ping, payload, callback)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``on_close`` follows. Harmless twice."""
        encode_close_payload(code, reason)  # bad arguments fail here, in the caller's thread
        self.loop.call_in_loop(self._close, code, reason)

    def pause_reading(self) -> None:
        """Stop reading from the socket (the peer will see TCP backpressure).
        Keepalive timeouts are suspended meanwhile: pongs cannot be read."""
        self.loop.call_in_loop(self._set_paused, True)

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`. Safe from any thread."""
        self.loop.call_in_loop(self._set_paused, False)

    # -- server side --------------------------------------------------------

    def accept(self, subprotocol: str | None = None, headers: Any = ()) -> None:
        """Server: accept the handshake (from ``process_request``)."""
        proto = self.protocol
        assert isinstance(proto, ServerConnection)
        items = headers.items() if isinstance(headers, dict) else headers
        proto.accept(subprotocol, items)
        if not self._processing:
            self._process()  # answered later than the request (an async hook)

    def reject(self, status: int = 403, body: str = "", headers: Any = ()) -> None:
        """Server: refuse the handshake with an HTTP status and a body."""
        proto = self.protocol
        assert isinstance(proto, ServerConnection)
        items = headers.items() if isinstance(headers, dict) else headers
        proto.reject(status, body, items)
        if not self._processing:
            self._process()

    def __repr__(self) -> str:
        return f"<WebSocket {self.state} remote={self.remote_address}>"

    # -- transport protocol (loop thread) -------------------------------------

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        transport.set_protocol(self)
        self._process()

    def data_received(self, data: memoryview, n: int) -> None:
        self.protocol.receive_data(data, n)
        self._process()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._process()

    def write_drained(self) -> None:
        if self._held:
            self._release_hold()
        if self._opened and not self._lost:
            self._call_handler("on_writable")

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        for handle in (self._ka_timer, self._ka_deadline, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._ka_timer = self._ka_deadline = self._close_timer = None
        proto = self.protocol
        if proto.closed is None:
            proto.receive_eof()
            for event in proto.events():
                if isinstance(event, Closed):
                    break
        if self._opened:
            closed = proto.closed
            assert closed is not None
            if exc is not None and not closed.clean:
                self._call_handler("on_error", exc)
            self._call_handler("on_close", closed.code, closed.reason, closed.clean)
        self.owner._ws_lost(self)
        callbacks, self._close_callbacks = self._close_callbacks, None
        if callbacks is not None:
            for fn in callbacks:
                try:
                    fn(self)
                except Exception:
                    logger.exception("exception in a close callback of %r", self)

    # -- internals ----------------------------------------------------------

    def _send_marshalled(self, payload: bytes, text: bool, compress: bool, size: int) -> None:
        if self.buffered_amount > self._write_limit:
            # The sender saw the buffer over its limit, these bytes counted,
            # and may wait for on_writable: owed even if what is queued now
            # is small (compressed) or the kernel takes it all at once.
            self._drain_owed = True
        with self._marshal_lock:
            self._marshalled -= size
        try:
            if text:
                self.protocol.send_utf8(payload, compress=compress)
            else:
                self.protocol.send_binary(payload, compress=compress)
        except InvalidStateError:
            logger.debug("dropped a message sent from another thread: connection %s", self.state)
            return
        # Written at the end of this loop iteration by _flush_queued, which
        # pays the drain report owed.
        if not (self._processing or self._flush_pending):
            self._flush_pending = True
            self.loop.call_soon(self._flush_corked)

    def _send(self, data: str | bytes | bytearray | memoryview, compress: bool) -> None:
        if isinstance(data, str):
            self.protocol.send_text(data, compress=compress)
        else:
            self.protocol.send_binary(data, compress=compress)
        self._after_send()

    def _after_send(self) -> None:
        # Sends are corked: everything sent while a batch of received
        # messages is dispatched goes out at the end of _process. Elsewhere
        # (a timer, a task, another thread) the first send of a burst goes
        # out at once, for latency, and the rest of the burst at the end of
        # this loop iteration: one syscall per burst, not one per message.
        # buffered_amount counts queued bytes meanwhile, and a sender that
        # saw it over the limit is still guaranteed an on_writable.
        if self._processing or self._flush_pending:
            return
        if not self._sent_since_input:
            self._sent_since_input = True
            self._flush()
        else:
            self._flush_pending = True
            self.loop.call_soon(self._flush_corked)

    def _flush_corked(self) -> None:
        self._flush_pending = False
        self._sent_since_input = False
        transport = self.transport
        if transport is not None and not self._lost:
            self._flush_queued(transport)

    def _ping(self, payload: bytes, callback: Callable[[float], object] | None) -> None:
        if self.protocol.state is not State.OPEN:
            return  # closed since ping() checked, from another thread: no pong will come
        self.protocol.send_ping(payload)
        self._pings[payload] = (self.loop.time(), callback)
        if not self._processing:
            self._flush()

    def _close(self, code: int, reason: str) -> None:
        self.protocol.close(code, reason)
        self._process()

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if self.transport is None:
            return
        if paused:
            self.transport.pause_reading()
        elif not self._held:
            self.transport.resume_reading()

    def _hold_reading(self, transport: Transport) -> None:
        """Stop reading a peer whose pings this end answers faster than the
        peer reads the pongs: while the send buffer is over write_limit and
        more than write_limit of it was asked for by the peer's pings since it
        was last within the limit. Reading resumes once the buffer drains (to
        the transport's low watermark); TCP meanwhile slows the peer down, and
        keepalive still runs (a peer that reads nothing is dropped at
        ping_timeout).

        Only the core's own answers count, never what the application sends
        (even in answer to a message): two wsloop peers that both send more
        than they read would otherwise both stop reading, each waiting for
        the other to drain it, forever. Holding needs the peer to have sent
        some thousands of pings (write_limit's worth of pongs) that this end
        answered while it could not send, which no wsloop peer does by
        itself (keepalive has one ping out at a time). An application that
        answers messages pauses reading itself (docs/backpressure.md)."""
        limit = self._write_limit
        if self.buffered_amount <= limit:
            self._answered = 0
        elif self._answered > limit and not self._held and not transport.is_closing:
            self._held = True
            logger.debug("pongs unread by %s: reading held until they drain", self.remote_address)
            transport.pause_reading()
            if not transport.expect_drain():
                self.loop.call_soon(self._release_hold)

    def _release_hold(self) -> None:
        if not self._held:
            return
        self._held = False
        self._answered = 0
        transport = self.transport
        if transport is not None and not self._lost and not self._paused:
            transport.resume_reading()

    def _flush(self) -> None:
        proto = self.protocol
        transport = self.transport
        data = proto.data_to_send_chunk()
        while data:
            if transport is not None:
                transport.write(data)
            data = proto.data_to_send_chunk()

    def _process(self) -> None:
        """Deliver every event the protocol has, then act on its state."""
        if self._processing:
            return
        self._processing = True
        self._sent_since_input = False  # new input: the next lone send goes out at once
        proto = self.protocol
        try:
            while not self._lost:
                event = proto.next_event()
                if event is None:
                    break
                if type(event) is Message:
                    try:
                        self._on_message(self, event.data)
                    except Exception as exc:
                        self._handler_failed("on_message", exc)
                elif isinstance(event, Ping):
                    # Its pong is queued (2 header bytes, 4 of mask for a client).
                    self._answered += len(event.data) + 6
                    self._call_handler("on_ping", event.data)
                elif isinstance(event, Pong):
                    self._on_pong(event.data)
                elif isinstance(event, Closed):
                    if event.error is not None:
                        logger.info(
                            "failing connection from %s: %s", self.remote_address, event.error
                        )
                        if self._opened:
                            self._call_handler("on_error", event.error)
                elif isinstance(event, Opened):
                    self._opened = True
                    self.owner._ws_opened(self)
                    self._start_keepalive()
                    self._call_handler("on_open")
                elif isinstance(event, RequestReceived):
                    self.owner._ws_request(self, event)
                elif isinstance(event, HandshakeFailed):
                    self.owner._ws_refused(self, event.error)
        finally:
            self._processing = False
        transport = self.transport
        if transport is None or self._lost:
            self._flush()
            return
        self._flush_queued(transport)
        if self._answered:
            self._hold_reading(transport)
        if proto.close_transport:
            transport.close()
            self._arm_close_timer()
        elif proto.state is State.CLOSING or proto.state is State.CLOSED:
            # Waiting for the peer's close frame, or (client) for the server
            # to close TCP: never longer than close_timeout.
            self._arm_close_timer()

    def _flush_queued(self, transport: Transport) -> None:
        """Write what was corked. If a sender saw the buffer over its limit
        (partly because of what was queued), make sure on_writable follows,
        whether the kernel took everything (report it now) or not (the
        transport reports it once drained)."""
        seen = self.buffered_amount
        owed = self._drain_owed
        self._drain_owed = False
        self._flush()
        if (seen <= self._write_limit and not owed) or transport.is_closing:
            return
        if not transport.expect_drain():
            self.loop.call_soon(self._drained)

    def _drained(self) -> None:
        """The report _flush_queued promised, unless more was written since:
        then the transport reports the drain when it happens."""
        transport = self.transport
        if transport is not None and not self._lost and not transport.expect_drain():
            self.write_drained()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._lost and self.transport is not None:
            self._close_timer = self.loop.call_later(
                self.options.close_timeout, self._close_expired
            )

    def _close_expired(self) -> None:
        self._close_timer = None
        if self.transport is not None and not self._lost:
            logger.debug("close timeout: aborting connection to %s", self.remote_address)
            self.transport.abort()

    def _call_handler(self, name: str, *args: Any) -> None:
        try:
            getattr(self._handler, name)(self, *args)
        except Exception as exc:
            self._handler_failed(name, exc)

    def _handler_failed(self, name: str, exc: Exception) -> None:
        logger.error("exception in %s handler of %r", name, self, exc_info=exc)
        if name != "on_error":
            try:
                self._handler.on_error(self, exc)
            except Exception:
                logger.exception("exception in on_error handler of %r", self)
        if self.options.handler_errors == "close" and self.protocol.state is State.OPEN:
            self.protocol.close(1011, "internal error")
            if not self._processing:
                self._process()

    # -- keepalive ----------------------------------------------------------

    def _start_keepalive(self) -> None:
        interval = self.options.ping_interval
        if interval:
            self._ka_timer = self.loop.call_later(interval, self._keepalive)

    def _keepalive(self) -> None:
        self._ka_timer = None
        if self.protocol.state is not State.OPEN or self._lost:
            return
        if self._ka_ping is None:
            payload = os.urandom(4)
            self._ka_ping = payload
            self._ping(payload, None)
            timeout = self.options.ping_timeout
            if timeout:
                self._ka_deadline = self.loop.call_later(timeout, self._keepalive_expired)
        interval = self.options.ping_interval
        assert interval
        self._ka_timer = self.loop.call_later(interval, self._keepalive)

    def _keepalive_expired(self) -> None:
        self._ka_deadline = None
        if self._ka_ping is None or self._lost:
            return
        timeout = self.options.ping_timeout
        assert timeout
        if self._paused:
            # Reading is paused: the pong may be sitting unread. Wait.
            self._ka_deadline = self.loop.call_later(timeout, self._keepalive_expired)
            return
        logger.info("keepalive: no pong from %s within %.1fs", self.remote_address, timeout)
        self._call_handler("on_error", TimeoutError(f"no pong within {timeout}s (keepalive)"))
        self.protocol.fail(1011, "keepalive ping timeout")
        self._process()

    def _on_pong(self, data: bytes) -> None:
        waiter = self._pings.pop(data, None)
        if waiter is not None:
            sent, callback = waiter
            self._latency = self.loop.time() - sent
            if data == self._ka_ping:
                self._ka_ping = None
                if self._ka_deadline is not None:
                    self._ka_deadline.cancel()
                    self._ka_deadline = None
            if callback is not None:
                try:
                    callback(self._latency)
                except Exception as exc:
                    self._handler_failed("ping callback", exc)
        self._call_handler("on_pong", data)
