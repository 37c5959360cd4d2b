"""``python -m ground upload QUEUE --add FILE... | --send URL | --list``: forward batches to a server.

For operators who pass downlinked batch files (or any file) on to a data server.  The queue
is a small SQLite file.  ``--add`` queues files (the same bytes are never queued twice; a
file whose bytes changed, or one the server rejected, is queued again).  ``--send URL``
POSTs each pending file::

    POST URL
    Content-Type: application/octet-stream
    Repr-Digest: sha-256=:<base64 SHA-256 of the body>:      (RFC 9530)
    X-Pygnc-SHA256: <hex SHA-256 of the body>
    X-Pygnc-Name: <file name, percent-encoded>
    Idempotency-Key: "<hex SHA-256 of the body>/<file name, percent-encoded>"
    Authorization: Bearer <token>                            (with --token-file)

The checksum is computed over the bytes actually sent.  Delivery is **at least once**: a
reply lost after the server stored the file (a dropped connection, a timeout, this process
stopped before it noted the answer) makes the next attempt send the same file again.  The
``Idempotency-Key`` (the draft IETF header of that name, a quoted string) is the same for
every attempt at the same bytes under the same name, in this run or a later one, so a
receiver de-duplicates on it: a key it has stored answers 2xx again without storing twice.
Names are percent-encoded (RFC 3986, UTF-8) where a character is not printable ASCII or is
``%``, so any file name fits a header.  A file is marked ``sent`` only on a
2xx answer (and, if the answer is JSON carrying ``sha256``, only if it matches).  A network
error, a timeout, 408, 425, 429 or 5xx is retried with exponential backoff (``--backoff-s``
doubling up to ``--max-backoff-s``, with jitter); the next attempt time is kept in the queue,
so a later run (cron) honours it.  Any other 4xx marks the file ``rejected`` (fix the cause,
then ``--add`` it again).  Exit status: 0 nothing left pending, 1 something still pending or
rejected, 2 bad usage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id         INTEGER PRIMARY KEY,
    path              TEXT NOT NULL UNIQUE,   -- absolute
    sha256            TEXT NOT NULL,          -- of the bytes when queued (or last sent)
    size_bytes        INTEGER NOT NULL,
    state             TEXT NOT NULL,          -- pending | sent | rejected
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_unix REAL NOT NULL DEFAULT 0,
    last_error        TEXT NOT NULL DEFAULT '',
    queued_utc        TEXT NOT NULL,
    sent_utc          TEXT NOT NULL DEFAULT '',
    response          TEXT NOT NULL DEFAULT ''
);
"""

RETRY_STATUS = {408, 425, 429}


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Attempt:
    ok: bool
    retry: bool
    note: str
    response: str = ""


#: Characters of a file name sent as they are (printable ASCII but ``%``); others are
#: percent-encoded from UTF-8.
_NAME_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_name(name: str) -> str:
    """*name* as it travels in a header: percent-encoded where not printable ASCII or ``%``."""
    return urllib.parse.quote(name, safe=_NAME_SAFE, errors="surrogateescape")


def idempotency_key(data: bytes, name: str) -> str:
    """The ``Idempotency-Key`` of *data* sent under *name* (a structured-field string): the
    same for every attempt at these bytes under this name."""
    return (
        '"' + hashlib.sha256(data).hexdigest() + "/" + urllib.parse.quote(name, safe="", errors="surrogateescape") + '"'
    )


def digest_headers(data: bytes) -> dict[str, str]:
    d = hashlib.sha256(data).digest()
    return {"Repr-Digest": f"sha-256=:{base64.b64encode(d).decode()}:", "X-Pygnc-SHA256": d.hex()}


def post(url: str, name: str, data: bytes, token: str | None, timeout_s: float) -> Attempt:
    """One POST of *data*; classifies the outcome (never raises for network trouble)."""
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Pygnc-Name": header_name(name),
        "Idempotency-Key": idempotency_key(data, name),
        **digest_headers(data),
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read(64 * 1024)
            status = resp.status
    except urllib.error.HTTPError as exc:
        retry = exc.code in RETRY_STATUS or exc.code >= 500
        return Attempt(False, retry, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, True, f"network: {reason}")
    text = body.decode("utf-8", "replace")
    if not 200 <= status < 300:
        return Attempt(False, status >= 500, f"HTTP {status}", text)
    try:
        answer = json.loads(text) if text.strip() else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "sha256" in answer and answer["sha256"] != hashlib.sha256(data).hexdigest():
        return Attempt(
            False, True, f"server reports checksum {answer['sha256']}, sent {hashlib.sha256(data).hexdigest()}", text
        )
    return Attempt(True, False, f"HTTP {status}", text)


class UploadQueue:
    def __init__(self, path: Path):
        self.conn = sqlite3.connect(str(path))
        self.conn.executescript(QUEUE_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add(self, path: Path) -> str:
        p = path.resolve()
        data = p.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        row = self.conn.execute("SELECT sha256, state FROM uploads WHERE path = ?", (str(p),)).fetchone()
        with self.conn:
            if row is None:
                self.conn.execute(
                    "INSERT INTO uploads (path, sha256, size_bytes, state, queued_utc) VALUES (?, ?, ?, 'pending', ?)",
                    (str(p), sha, len(data), _utc()),
                )
                return "queued"
            if row[0] == sha and row[1] != "rejected":
                return "already queued" if row[1] == "pending" else "already sent"
            self.conn.execute(
                "UPDATE uploads SET sha256 = ?, size_bytes = ?, state = 'pending', attempts = 0,"
                " next_attempt_unix = 0, last_error = '', queued_utc = ? WHERE path = ?",
                (sha, len(data), _utc(), str(p)),
            )
            return "queued again"

    def rows(self):
        return self.conn.execute(
            "SELECT path, state, attempts, last_error, sent_utc FROM uploads ORDER BY upload_id"
        ).fetchall()

    def pending(self):
        return self.conn.execute(
            "SELECT upload_id, path, attempts, next_attempt_unix FROM uploads"
            " WHERE state = 'pending' ORDER BY upload_id"
        ).fetchall()

    def send(
        self,
        url: str,
        token: str | None = None,
        attempts: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        timeout_s: float = 30.0,
        now_ok: bool = False,
        rng: random.Random | None = None,
        log=print,
        sleep=time.sleep,
    ) -> tuple[int, int]:
        """Send what is due, retrying each file up to *attempts* times in this call.

        Returns (sent, still pending)."""
        rng = rng or random.Random()
        tried: dict[int, int] = {}
        sent = 0
        while True:
            due = []
            now = time.time()
            wait = None
            for uid, path, n_att, next_at in self.pending():
                if tried.get(uid, 0) >= attempts:
                    continue
                if now_ok and uid not in tried or next_at <= now:
                    due.append((uid, path, n_att))
                else:
                    wait = next_at - now if wait is None else min(wait, next_at - now)
            if not due:
                if wait is None or not tried:
                    break
                sleep(max(0.0, wait))
                continue
            for uid, path, n_att in due:
                tried[uid] = tried.get(uid, 0) + 1
                p = Path(path)
                try:
                    data = p.read_bytes()
                except OSError as exc:
                    self._fail(
                        uid, n_att, f"unreadable: {exc}", retry=False, backoff=(backoff_s, max_backoff_s), rng=rng
                    )
                    log(f"{p}: unreadable: {exc}")
                    continue
                a = post(url, p.name, data, token, timeout_s)
                if a.ok:
                    with self.conn:
                        self.conn.execute(
                            "UPDATE uploads SET state = 'sent', attempts = ?, sha256 = ?, sent_utc = ?,"
                            " response = ?, last_error = '' WHERE upload_id = ?",
                            (n_att + 1, hashlib.sha256(data).hexdigest(), _utc(), a.response[:2000], uid),
                        )
                    sent += 1
                    log(f"{p}: sent ({len(data)} bytes, {a.note})")
                else:
                    delay = self._fail(uid, n_att, a.note, a.retry, (backoff_s, max_backoff_s), rng)
                    log(f"{p}: {a.note}; " + (f"retry in {delay:.1f} s" if a.retry else "rejected"))
        return sent, len(self.pending())

    def _fail(self, uid: int, n_att: int, note: str, retry: bool, backoff, rng) -> float:
        base, cap = backoff
        delay = min(cap, base * 2**n_att) * (0.5 + 0.5 * rng.random())
        with self.conn:
            self.conn.execute(
                "UPDATE uploads SET attempts = ?, last_error = ?, next_attempt_unix = ?, state = ? WHERE upload_id = ?",
                (n_att + 1, note, time.time() + delay, "pending" if retry else "rejected", uid),
            )
        return delay


def add_arguments(p) -> None:
    p.add_argument("queue", type=Path, help="the queue's SQLite file (created if absent)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--add", type=Path, nargs="+", metavar="FILE", help="queue these files")
    g.add_argument("--send", metavar="URL", help="POST the pending files to URL (http or https)")
    g.add_argument("--list", action="store_true", help="show the queue")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token (never on the command line)")
    p.add_argument("--attempts", type=int, default=5, help="tries per file in this run (default 5)")
    p.add_argument("--backoff-s", type=float, default=2.0, help="first retry delay, doubling (default 2 s)")
    p.add_argument("--max-backoff-s", type=float, default=300.0, help="longest retry delay (default 300 s)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per-request timeout (default 30 s)")
    p.add_argument("--now", action="store_true", help="ignore the stored next-attempt times")


def run(args) -> int:
    if args.send and not args.send.startswith(("http://", "https://")):
        print(f"upload: {args.send!r} is not an http(s) URL", file=sys.stderr)
        return 2
    if args.attempts < 1 or args.backoff_s < 0 or args.max_backoff_s < 0 or args.timeout_s <= 0:
        print("upload: --attempts must be >= 1, backoffs >= 0, --timeout-s > 0", file=sys.stderr)
        return 2
    token = None
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            print(f"upload: token file {args.token_file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    try:
        q = UploadQueue(args.queue)
    except sqlite3.DatabaseError as exc:
        print(f"upload: {args.queue}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.add:
            bad = 0
            for f in args.add:
                if not f.is_file():
                    print(f"upload: {f}: no such file", file=sys.stderr)
                    bad += 1
                    continue
                print(f"{f}: {q.add(f)}")
            return 1 if bad else 0
        if args.list:
            for path, state, n, err, sent_utc in q.rows():
                print(
                    f"{state:<9} {n:>2} tries  {path}"
                    + (f"  sent {sent_utc}" if sent_utc else "")
                    + (f"  ({err})" if err and state != "sent" else "")
                )
            return 0
        _, left = q.send(
            args.send, token, args.attempts, args.backoff_s, args.max_backoff_s, args.timeout_s, now_ok=args.now
        )
        rejected = sum(1 for r in q.rows() if r[1] == "rejected")
        if left or rejected:
            print(f"upload: {left} pending, {rejected} rejected", file=sys.stderr)
            return 1
        return 0
    finally:
        q.close()
