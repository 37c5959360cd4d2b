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

The source is polled every :data:`TICK_S` in one worker thread (file reading and decoding
never run on the event loop; ``poll`` and ``current`` never overlap).  Every message
carries the poll generation it came from, so a page that connects between two polls
neither misses nor repeats rows.  A page that stops reading is dropped after
:data:`SEND_TIMEOUT_S`; one that disconnects mid-stream is forgotten; neither affects the others.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import WSMsgType, web

from . import model

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Seconds between two polls of the source.
TICK_S = 0.2
#: A page that has not taken a message in this long is dropped.
SEND_TIMEOUT_S = 5.0
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


def list_files(root: Path | None) -> list[str]:
    if root is None or not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath, f)
            if p.suffix in _LISTED_SUFFIXES and not f.startswith(".") and safe_file(root, str(p.relative_to(root))):
                out.append(str(p.relative_to(root)))
                if len(out) >= MAX_FILES_LISTED:
                    return out
    return out


class Station:
    """The source, the connected pages, and the loop that feeds them."""

    def __init__(self, source, tick_s: float = TICK_S):
        self.source = source
        self.tick_s = tick_s
        self.clients: dict[web.WebSocketResponse, int] = {}   # page -> generation it has seen
        self.generation = 0
        self.sent = 0               # messages sent to pages
        self.dropped_clients = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="station-source")
        self._task: asyncio.Task | None = None

    # -- the source, in its thread ------------------------------------------------------------------
    def _stamp(self, msgs: list[dict]) -> list[dict]:
        for m in msgs:
            if m.get("type") == "snapshot":
                m["time_scale"] = self.source.time_scale
        return msgs

    def _poll(self) -> tuple[int, list[dict]]:
        msgs = self._stamp(self.source.poll())
        self.generation += 1
        return self.generation, msgs

    def _current(self) -> tuple[int, list[dict]]:
        return self.generation, self._stamp(self.source.current())

    async def _run(self, fn):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def pump(self) -> None:
        while True:
            try:
                gen, msgs = await self._run(self._poll)
            except Exception as exc:  # a source bug must not end the server: say it
                gen, msgs = self.generation, [{"type": "source", "state": "error",
                                               "detail": f"{type(exc).__name__}: {exc}"}]
            if msgs:
                await self.broadcast(msgs, gen)
            await asyncio.sleep(self.tick_s)

    async def broadcast(self, messages: list[dict], gen: int) -> None:
        """*messages* of poll *gen* to every page that has not seen that generation."""
        texts = [encode(m) for m in messages]
        for ws, seen in list(self.clients.items()):
            if seen >= gen:
                continue
            for text in texts:
                if not await self._send(ws, text):
                    break
            else:
                self.clients[ws] = gen

    async def _send(self, ws: web.WebSocketResponse, text: str) -> bool:
        try:
            await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT_S)
            self.sent += 1
            return True
        except (ConnectionError, asyncio.TimeoutError, RuntimeError):
            if self.clients.pop(ws, None) is not None:
                self.dropped_clients += 1
            await self._close(ws)
            return False

    # -- HTTP ---------------------------------------------------------------------------------------------
    def hello(self) -> dict:
        return {"type": "hello", "version": model.PROTOCOL_VERSION,
                "source": {"kind": self.source.kind, "name": self.source.name, "live": self.source.live},
                "time_scale": self.source.time_scale, "files": list_files(self.source.files_root)}

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        await ws.prepare(request)
        gen, msgs = await self._run(self._current)
        ok = await self._send(ws, encode(self.hello()))
        for m in msgs:
            ok = ok and await self._send(ws, encode(m))
        if not ok:
            return ws
        self.clients[ws] = gen
        try:
            async for msg in ws:  # the page sends nothing we need; read to see it close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.pop(ws, None)
        return ws

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def current(self, request: web.Request) -> web.Response:
        _, msgs = await self._run(self._current)
        return web.Response(text=encode([self.hello(), *msgs]), content_type="application/json")

    async def files(self, request: web.Request) -> web.StreamResponse:
        root = self.source.files_root
        p = safe_file(root, request.match_info["name"]) if root is not None else None
        if p is None:
            raise web.HTTPNotFound(text="not found\n")
        return web.FileResponse(p)

    async def _start(self, app: web.Application) -> None:
        self._task = asyncio.create_task(self.pump())

    async def _shutdown(self, app: web.Application) -> None:
        """Before the server waits for open requests to end: end the WebSocket ones."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        clients, self.clients = list(self.clients), {}
        await asyncio.gather(*(self._close(ws) for ws in clients))

    @staticmethod
    async def _close(ws) -> None:
        try:
            await asyncio.wait_for(ws.close(code=1001, message=b"server stopping"), 1.0)
        except Exception:
            pass

    async def _stop(self, app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.source.close)
        self._pool.shutdown(wait=True, cancel_futures=True)

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
