"""The ground station's web server (aiohttp): the page, its assets, a WebSocket of messages.

Routes:

* ``GET /`` - the page (``static/index.html``); ``GET /static/...`` - its scripts, styles
  and vendored libraries (``static/vendor/``, see ``VENDOR.md`` there), all served from
  the package: the page needs no internet;
* ``GET /ws`` - the WebSocket: a ``hello``, then what the source holds (``snapshot``,
  ``status``, ``source``), then every update as the source produces it (:data:`model.MESSAGES`);
* ``GET /api/current`` - the same messages a new page gets, as one JSON list (for scripts);
* ``GET /files/<name>`` - a file of the source's directory (CSV, plots, batch files), for
  download.  Only regular files inside that directory: ``..``, absolute paths, and symbolic
  links leading outside are refused (404), whatever their encoding.

The source is polled every :data:`TICK_S` in one worker thread (file reading, decoding and
JSON encoding never run on the event loop; ``poll`` and ``current`` never overlap).  Every
message carries the poll generation it came from, so a page that connects between two
polls neither misses nor repeats rows.

Each page has its own queue and sender, so a slow page never holds up the others.  A
message is encoded once for every page; a newer snapshot (or status, source state, file
list) replaces an older one still queued for a page.  A watchdog looks at every page each
:data:`WATCHDOG_S`, whether or not messages flow: a page that has taken none of the bytes
queued for it (in the server and in the kernel's socket buffer) for :data:`SEND_TIMEOUT_S`
is dropped, its connection reset so that what was queued for it is freed at once; so is a
page whose queue exceeds :data:`PAGE_MAX_PENDING_BYTES`.  A page's memory is thus its
queue (at most that) plus the unsent part of one message.  One that disconnects is forgotten.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import WSMsgType, web

from . import model

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Seconds between two polls of the source.
TICK_S = 0.2
#: A page that has taken none of the bytes queued for it in this long is dropped.
SEND_TIMEOUT_S = 5.0
#: Seconds between two looks of the watchdog at every page (independent of traffic).
WATCHDOG_S = 1.0
#: A page whose queue of messages not yet handed to its socket exceeds this is dropped.
PAGE_MAX_PENDING_BYTES = 32 * 2**20
#: Seconds between two looks at the source directory's files (a ``files`` message when changed).
FILES_CHECK_S = 2.0
#: WebSocket ping interval, s (a vanished page is noticed within about twice this).
HEARTBEAT_S = 15.0
#: Files of the source directory listed in ``hello`` (at most).
MAX_FILES_LISTED = 200
_LISTED_SUFFIXES = {".csv", ".png", ".json", ".oem", ".bin", ".md", ".txt", ".log"}


def encode(message: dict) -> str:
    """A message as the JSON text sent (NaN never appears: the model sends null)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def safe_file(root: Path, name: str) -> Path | None:
    """*name* (a URL path below /files/, already percent-decoded) as a regular file inside
    *root*, or None: no absolute paths, no ``..``, no link leading outside, no directories."""
    if not name or "\0" in name or name.startswith(("/", "\\")) or "\\" in name:
        return None
    parts = Path(name).parts
    if any(p in ("..", ".") for p in parts) or Path(name).is_absolute():
        return None
    root = root.resolve()
    try:
        p = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not p.is_relative_to(root) or not p.is_file():
        return None
    return p


def offered(root: Path, name: str, only: frozenset[str] | None = None) -> Path | None:
    """*name* as a file of *root* offered for download, or None: one of *only* when given,
    else a :func:`safe_file` of a listed kind (suffix) whose path, as named and as it
    resolves, has no hidden (dot) part - what the listing shows is all that is served."""
    if only is not None:
        return safe_file(root, name) if name in only else None
    if Path(name).suffix not in _LISTED_SUFFIXES or any(part.startswith(".") for part in Path(name).parts):
        return None
    p = safe_file(root, name)
    if p is None or any(part.startswith(".") for part in p.relative_to(root.resolve()).parts):
        return None
    return p


def list_files(root: Path | None, only: frozenset[str] | None = None) -> list[str]:
    """The files of *root* offered for download (those named in *only*, when given)."""
    if root is None or not root.is_dir():
        return []
    if only is not None:
        return sorted(n for n in only if offered(root, n, only))
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            name = str(Path(dirpath, f).relative_to(root))
            if offered(root, name):
                out.append(name)
                if len(out) >= MAX_FILES_LISTED:
                    return out
    return out


#: A queued message of these types makes older queued messages of the listed types moot.
_SUPERSEDES = {
    "snapshot": frozenset({"snapshot", "append"}),
    "status": frozenset({"status"}),
    "source": frozenset({"source"}),
    "files": frozenset({"files"}),
}


def _frame_bytes(n: int) -> int:
    """Bytes of a server's (unmasked) WebSocket frame with an *n*-byte payload."""
    return n + (2 if n < 126 else 4 if n < 65536 else 10)


def _kernel_queued(sock) -> int:
    """Bytes the kernel holds in *sock*'s send queue (not yet acknowledged by the peer), where
    the system says (Linux: SIOCOUTQ); 0 elsewhere."""
    try:
        import fcntl
        import termios

        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # TIOCOUTQ is SIOCOUTQ
        return max(0, struct.unpack("i", buf)[0])
    except (ImportError, AttributeError, OSError, ValueError):
        return 0


def queued_bytes(transport) -> int:
    """Bytes sent to a page that it has not taken yet: the transport's buffer plus the kernel's
    send queue."""
    if transport is None:
        return 0
    n = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    return n + (_kernel_queued(sock) if sock is not None else 0)


def reset(transport) -> None:
    """Close a page's connection at once with a TCP reset: nothing queued for it is kept, in
    the server or in the kernel."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    transport.abort()


class _Page:
    """A connected page: its WebSocket and transport, the messages queued for it, and how far
    it has taken what was sent (for the watchdog)."""

    def __init__(self, ws: web.WebSocketResponse, transport, seen: int):
        self.ws, self.transport, self.seen = ws, transport, seen
        self.pending: deque[tuple[str, bytes]] = deque()
        self.pending_bytes = 0
        self.wake = asyncio.Event()
        self.written = 0  # frame bytes handed to the transport
        self.taken = 0  # of which the page had taken, at the watchdog's last look
        self.t_moved = time.monotonic()  # when it last took any
        self.task: asyncio.Task | None = None

    def queue(self, items: list[tuple[str, bytes]]) -> None:
        for kind, data in items:
            moot = _SUPERSEDES.get(kind)
            if moot and any(k in moot for k, _ in self.pending):
                self.pending = deque((k, d) for k, d in self.pending if k not in moot)
                self.pending_bytes = sum(len(d) for _, d in self.pending)
            self.pending.append((kind, data))
            self.pending_bytes += len(data)
        self.wake.set()


class Station:
    """The source, the connected pages, and the loops that feed and watch them."""

    def __init__(self, source, tick_s: float = TICK_S):
        self.source = source
        self.tick_s = tick_s
        self.pages: dict[web.WebSocketResponse, _Page] = {}
        self.generation = 0
        self.sent = 0  # messages sent to pages
        self.dropped_clients = 0  # pages dropped for not reading
        self._files: list[str] | None = None
        self._t_files = -float("inf")
        self._welcome: tuple[int, list[tuple[str, bytes]]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="station-source")
        self._tasks: list[asyncio.Task] = []

    # -- the source, in its thread ------------------------------------------------------------------
    def _stamp(self, msgs: list[dict]) -> list[dict]:
        for m in msgs:
            if m.get("type") == "snapshot":
                m["time_scale"] = self.source.time_scale
        return msgs

    def _check_files(self, force: bool = False) -> bool:
        """Look at the source directory's files (at most every FILES_CHECK_S); True when changed."""
        now = time.monotonic()
        if not force and now - self._t_files < FILES_CHECK_S:
            return False
        self._t_files = now
        files = list_files(self.source.files_root, self.source.files_only)
        changed = files != self._files
        self._files = files
        return changed

    def _poll(self) -> tuple[int, list[tuple[str, bytes]]]:
        msgs = self._stamp(self.source.poll())
        known = self._files is not None
        if self._check_files() and known:
            msgs.append({"type": "files", "files": self._files})
        self.generation += 1
        return self.generation, [(m["type"], encode(m).encode()) for m in msgs]

    def _current(self) -> tuple[int, list[dict]]:
        if self._files is None:
            self._check_files(force=True)
        return self.generation, [self.hello(), *self._stamp(self.source.current())]

    def _welcome_messages(self) -> tuple[int, list[tuple[str, bytes]]]:
        """What a page gets first, encoded once per poll generation for every page that connects."""
        if self._welcome is None or self._welcome[0] != self.generation:
            gen, msgs = self._current()
            self._welcome = (gen, [(m["type"], encode(m).encode()) for m in msgs])
        return self._welcome

    async def _run(self, fn):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def pump(self) -> None:
        while True:
            try:
                gen, items = await self._run(self._poll)
            except Exception as exc:  # a source bug must not end the server: say it
                msg = {"type": "source", "state": "error", "detail": f"{type(exc).__name__}: {exc}"}
                gen, items = self.generation, [("source", encode(msg).encode())]
            if items:
                self.broadcast(items, gen)
            await asyncio.sleep(self.tick_s)

    def broadcast(self, items: list[tuple[str, bytes]], gen: int) -> None:
        """Queue encoded messages of poll *gen* for every page that has not seen that generation."""
        for page in list(self.pages.values()):
            if page.seen >= gen:
                continue
            page.seen = gen
            page.queue(items)
            if page.pending_bytes > PAGE_MAX_PENDING_BYTES:
                self._drop(page)

    async def _sender(self, page: _Page) -> None:
        try:
            while True:
                await page.wake.wait()
                page.wake.clear()
                while page.pending:
                    _, data = page.pending.popleft()
                    page.pending_bytes -= len(data)
                    page.written += _frame_bytes(len(data))
                    await page.ws.send_frame(data, WSMsgType.TEXT)
                    self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection went away or was reset: the page is gone
            self._drop(page)

    async def watchdog(self) -> None:
        """Every WATCHDOG_S, traffic or not: drop each page that has taken nothing for SEND_TIMEOUT_S."""
        while True:
            await asyncio.sleep(WATCHDOG_S)
            now = time.monotonic()
            for page in list(self.pages.values()):
                queued = queued_bytes(page.transport)
                taken = page.written - queued
                if queued <= 0 or taken > page.taken:
                    page.t_moved = now
                page.taken = max(page.taken, taken)
                if now - page.t_moved > SEND_TIMEOUT_S:
                    self._drop(page)

    def _drop(self, page: _Page) -> None:
        """A page that does not take what is sent: reset its connection, forget its queue."""
        if self.pages.pop(page.ws, None) is None:
            return
        self.dropped_clients += 1
        page.pending.clear()
        page.pending_bytes = 0
        if page.task is not None and page.task is not asyncio.current_task():
            page.task.cancel()
        reset(page.transport)

    def _forget(self, page: _Page) -> None:
        """A page whose WebSocket ended: what is still queued for it will never be taken."""
        self.pages.pop(page.ws, None)
        if page.task is not None:
            page.task.cancel()
        if queued_bytes(page.transport) > 0:
            reset(page.transport)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def hello(self) -> dict:
        return {
            "type": "hello",
            "version": model.PROTOCOL_VERSION,
            "source": {"kind": self.source.kind, "name": self.source.name, "live": self.source.live},
            "time_scale": self.source.time_scale,
            "files": list(self._files or []),
        }

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        # No per-message compression: each page would deflate every snapshot again, and the
        # watchdog counts the bytes handed to the socket.
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False)
        await ws.prepare(request)
        transport = request.transport
        gen, welcome = await self._run(self._welcome_messages)
        if transport is None or transport.is_closing() or ws.closed:
            return ws
        page = _Page(ws, transport, gen)
        self.pages[ws] = page
        page.queue(welcome)
        page.task = asyncio.create_task(self._sender(page))
        try:
            async for msg in ws:  # the page sends nothing we need; read to see it close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._forget(page)
        return ws

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def current(self, request: web.Request) -> web.Response:
        text = await self._run(lambda: encode(self._current()[1]))
        return web.Response(text=text, content_type="application/json")

    async def files(self, request: web.Request) -> web.StreamResponse:
        root, only, name = self.source.files_root, self.source.files_only, request.match_info["name"]
        p = offered(root, name, only) if root is not None else None
        if p is None:
            raise web.HTTPNotFound(text="not found\n")
        return web.FileResponse(p)

    async def _start(self, app: web.Application) -> None:
        self._tasks = [asyncio.create_task(self.pump()), asyncio.create_task(self.watchdog())]

    async def _shutdown(self, app: web.Application) -> None:
        """Before the server waits for open requests to end: end the WebSocket ones."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pages, self.pages = list(self.pages.values()), {}
        for page in pages:
            if page.task is not None:
                page.task.cancel()
        await asyncio.gather(*(self._close(page) for page in pages))

    @staticmethod
    async def _close(page: _Page) -> None:
        try:
            await asyncio.wait_for(page.ws.close(code=1001, message=b"server stopping"), 1.0)
        except Exception:
            pass
        if queued_bytes(page.transport) > 0:  # a page that does not read: do not wait for it
            reset(page.transport)

    async def _stop(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.source.close)
        await loop.run_in_executor(None, lambda: self._pool.shutdown(wait=True, cancel_futures=True))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/ws", self.ws)
        app.router.add_get("/api/current", self.current)
        app.router.add_get("/files/{name:.+}", self.files)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._stop)
        return app
