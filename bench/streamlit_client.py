"""A minimal Streamlit websocket client: open one page the way the browser does, on loopback only.

The browser's frontend connects to ``ws://HOST:PORT/_stcore/stream`` with the websocket
subprotocol ``streamlit`` and sends one ``BackMsg`` whose ``rerun_script`` holds the page's query
string (the deep link), empty widget states and the main page (``page_script_hash=""``). The server
then runs the script and streams ``ForwardMsg`` protobufs: ``new_session`` when the run starts, one
``delta`` per element, ``page_info_changed`` when the script sets the query string,
``session_status_changed`` and finally ``script_finished`` with a status:

- ``FINISHED_SUCCESSFULLY`` (0): the run reached the end of the script (an exception the script
  does not catch still ends this way: Streamlit draws it as an ``exception`` element first);
- ``FINISHED_WITH_COMPILE_ERROR`` (1): the script could not be compiled (``session_event`` carries
  the error);
- ``FINISHED_EARLY_FOR_RERUN`` (2): the run was cut short by a rerun (``st.rerun()``, a callback);
  another run follows on the same connection, so the client keeps reading;
- ``FINISHED_FRAGMENT_RUN_SUCCESSFULLY`` (3): a fragment rerun ended (not used by this page).

Cached messages: a client may list the hashes of messages it already holds in
``ClientState.cached_message_hashes``; the server then sends a ``ref_hash`` message in place of
such an element. This client lists none, so it receives every element in full; a ``ref_hash`` that
arrives anyway is resolved from the cacheable messages seen on the same connection, or counted in
:attr:`PageRun.unresolved_refs`.

Every read is bounded: a deadline for the whole page, a maximum message size and a maximum number
of messages. Only ``127.0.0.1`` is accepted as the host.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetStates

LOOPBACK = "127.0.0.1"
"""The only host this client connects to."""

STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"
MAX_MESSAGE_BYTES = 256 * 2**20
"""Largest single ForwardMsg accepted (Streamlit's own ``server.maxMessageSize`` is 200 MB)."""
MAX_MESSAGES = 20_000
"""Messages read per page at most (a page of this dashboard sends about a hundred)."""
MAX_KEPT_REFERENCES = 1_000
"""Cacheable messages remembered per connection to resolve ``ref_hash`` messages."""

TERMINAL = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "finished",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile_error",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "fragment_finished",
}
"""``script_finished`` statuses that end a page (``FINISHED_EARLY_FOR_RERUN`` does not)."""


@dataclass
class PageRun:
    """What one page run sent back.

    Attributes
    ----------
    query : str
        The query string (deep link) the page was opened with.
    status : str
        ``"finished"`` (script ran to its end), ``"compile_error"``, ``"fragment_finished"``,
        ``"timeout"`` (deadline passed), ``"closed"`` (the server closed the connection first),
        ``"too_many_messages"`` or ``"not_started"``.
    seconds : float
        From sending the rerun request to the terminal ``script_finished`` (or the failure).
    messages : int
        ForwardMsgs received.
    nbytes : int
        Bytes of all ForwardMsgs received.
    plotly_charts : int
        ``plotly_chart`` elements drawn.
    chart_kinds : list of str
        ``layout.meta.kind`` of each plotly chart (``"?"`` when it has none).
    chart_bytes : int
        Bytes of the plotly figure specs (JSON).
    exceptions : list of str
        Messages of ``exception`` elements (and of a compile error).
    errors : list of str
        Bodies of ``st.error`` alerts.
    warnings : list of str
        Bodies of ``st.warning`` alerts.
    final_query : str or None
        The last query string the script set (``page_info_changed``).
    reruns : int
        ``FINISHED_EARLY_FOR_RERUN`` seen before the end.
    unresolved_refs : int
        ``ref_hash`` messages naming a message this connection never received.
    error : str
        Why the page did not finish (empty when it did).
    """

    query: str
    status: str = "not_started"
    seconds: float = 0.0
    messages: int = 0
    nbytes: int = 0
    plotly_charts: int = 0
    chart_kinds: list[str] = field(default_factory=list)
    chart_bytes: int = 0
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    final_query: str | None = None
    reruns: int = 0
    unresolved_refs: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the script finished with no exception element, error alert or lost ref."""
        return (
            self.status == "finished"
            and not self.exceptions
            and not self.errors
            and not self.unresolved_refs
        )


class PageCollector:
    """Feed it the ForwardMsgs of one connection; it fills a :class:`PageRun`.

    Parameters
    ----------
    run : PageRun
        The record to fill.
    """

    def __init__(self, run: PageRun) -> None:
        self.run = run
        self._cached: dict[str, ForwardMsg] = {}

    def feed(self, msg: ForwardMsg, nbytes: int = 0) -> bool:
        """Record ``msg``; returns True when it ends the page (a terminal ``script_finished``).

        Parameters
        ----------
        msg : ForwardMsg
            One message from the server.
        nbytes : int
            Its size on the wire (for :attr:`PageRun.nbytes`).

        Returns
        -------
        bool
            Whether the page run is over.
        """
        run = self.run
        run.messages += 1
        run.nbytes += nbytes
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            target = self._cached.get(msg.ref_hash)
            if target is None:
                run.unresolved_refs += 1
                return False
            msg, kind = target, target.WhichOneof("type")
        elif msg.hash and msg.metadata.cacheable and len(self._cached) < MAX_KEPT_REFERENCES:
            self._cached[msg.hash] = msg
        if kind == "delta":
            self._delta(msg.delta)
        elif kind == "page_info_changed":
            run.final_query = msg.page_info_changed.query_string
        elif kind == "session_event":
            event = msg.session_event
            if event.WhichOneof("type") == "script_compilation_exception":
                exc = event.script_compilation_exception
                run.exceptions.append(f"{exc.type}: {exc.message}")
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                run.reruns += 1
                return False
            run.status = TERMINAL.get(msg.script_finished, f"status_{msg.script_finished}")
            return True
        return False

    def _delta(self, delta) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        which = element.WhichOneof("type")
        if which == "exception":
            exc = element.exception
            self.run.exceptions.append(f"{exc.type}: {exc.message}")
        elif which == "alert":
            if element.alert.format == Alert.ERROR:
                self.run.errors.append(element.alert.body)
            elif element.alert.format == Alert.WARNING:
                self.run.warnings.append(element.alert.body)
        elif which == "plotly_chart":
            spec = element.plotly_chart.spec
            self.run.plotly_charts += 1
            self.run.chart_bytes += len(spec)
            self.run.chart_kinds.append(_chart_kind(spec))


def _chart_kind(spec: str) -> str:
    try:
        meta = json.loads(spec).get("layout", {}).get("meta", {})
    except (ValueError, AttributeError):
        return "?"
    return str(meta.get("kind", "?")) if isinstance(meta, dict) else "?"


def rerun_request(query: str) -> bytes:
    """The first ``BackMsg`` of a page, as the frontend sends it: run the main page for ``query``.

    Parameters
    ----------
    query : str
        Query string without the ``?`` (``"dataset=moving_mnist&sample=3"``).

    Returns
    -------
    bytes
        The serialized ``BackMsg`` (no ``cached_message_hashes``: every element comes in full).
    """
    state = ClientState(query_string=query, widget_states=WidgetStates(), page_script_hash="")
    return BackMsg(rerun_script=state).SerializeToString()


def stream_url(port: int, host: str = LOOPBACK) -> str:
    """``ws://127.0.0.1:PORT/_stcore/stream``; any other host is refused (loopback only)."""
    if host != LOOPBACK:
        raise ValueError(f"this client only connects to {LOOPBACK}, not {host!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r}")
    return f"ws://{host}:{int(port)}{STREAM_PATH}"


async def open_page(
    port: int,
    query: str = "",
    *,
    timeout: float = 120.0,
    host: str = LOOPBACK,
    max_messages: int = MAX_MESSAGES,
) -> PageRun:
    """Open the page once over a fresh websocket and read until its script finishes.

    Parameters
    ----------
    port : int
        The Streamlit server's port on 127.0.0.1.
    query : str
        The deep link's query string.
    timeout : float
        Deadline in seconds for connecting, the whole run and closing.
    host : str
        Must be ``127.0.0.1``.
    max_messages : int
        Stop reading after this many messages (status ``"too_many_messages"``).

    Returns
    -------
    PageRun
        The record; never raises for a slow, failing or closed page (see ``status``/``error``).
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = stream_url(port, host)
    run = PageRun(query=query)
    collector = PageCollector(run)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                url,
                subprotocols=[SUBPROTOCOL],
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=timeout,
                close_timeout=5,
                ping_interval=None,  # the deadline bounds the page; no keepalive under load
                proxy=None,  # never a proxy from the environment: straight to loopback
            ) as ws:
                await ws.send(rerun_request(query))
                t0 = time.perf_counter()
                while True:
                    if run.messages >= max_messages:
                        run.status = "too_many_messages"
                        break
                    raw = await ws.recv()
                    if isinstance(raw, str):  # Streamlit only sends binary protobufs
                        raw = raw.encode()
                    msg = ForwardMsg()
                    msg.ParseFromString(raw)
                    if collector.feed(msg, len(raw)):
                        break
    except TimeoutError:
        run.status, run.error = "timeout", f"no script_finished within {timeout:g} s"
    except ConnectionClosed as exc:
        run.status, run.error = "closed", f"server closed the connection: {exc}"
    except OSError as exc:
        run.status, run.error = "closed", f"connection failed: {exc}"
    run.seconds = time.perf_counter() - t0
    return run


async def open_pages(
    port: int, queries: list[str], *, timeout: float = 120.0, concurrency: int | None = None
) -> list[PageRun]:
    """Open one page per query, all at once (or ``concurrency`` at a time), each on its own socket.

    Parameters
    ----------
    port : int
        Server port on 127.0.0.1.
    queries : list of str
        One query string per session.
    timeout : float
        Deadline per page, see :func:`open_page`.
    concurrency : int, optional
        At most this many pages open at the same time (default: all).

    Returns
    -------
    list of PageRun
        In the order of ``queries``.
    """
    limit = asyncio.Semaphore(concurrency or max(1, len(queries)))

    async def one(query: str) -> PageRun:
        async with limit:
            return await open_page(port, query, timeout=timeout)

    return list(await asyncio.gather(*(one(q) for q in queries)))


__all__ = [
    "LOOPBACK",
    "PageCollector",
    "PageRun",
    "open_page",
    "open_pages",
    "rerun_request",
    "stream_url",
]
