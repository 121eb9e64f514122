"""The project store: a SQLite file beside the dataset with the stroke journal and the review state.

``<dataset root>/.segstudio/project.sqlite`` (or a per-user folder when the dataset is read-only)
holds

* the **journal**: every committed stroke of every image (its atom, with the changed mask bit-packed and
  zlib-compressed), plus undo and redo markers, in order. Replaying the journal over the labels last
  written to disk gives the labels as they were when the app stopped, crash included, and rebuilds the
  undo stacks;
* per-image **review state**: status, free-text note and the last computed metrics (JSON).

The database runs in WAL mode with ``synchronous=NORMAL``: each journal entry is its own transaction,
which survives the process being killed (a power cut may lose the last few, never corrupt the file).
The store is used from one thread (the GUI's); open another :class:`ProjectStore` for another thread.

Journal writes never raise and never wait long: another process holding the write lock is waited for
``JOURNAL_BUSY_TIMEOUT_MS`` only, and a failed write (locked, disk full, read-only) stays queued in
memory, in order, and is written with the next journal write (or :meth:`ProjectStore.flush_journal`).
Subscribers of :meth:`ProjectStore.subscribe_journal_status` hear the reason when writing starts
failing and ``None`` when the queue is on disk again. Editing goes on either way: the document holds
the labels, the journal is only their crash copy.

Several app instances may open one dataset. Each :class:`ProjectStore` is an editing **session** (a
row of ``sessions``: pid, host, start, heartbeat) and every journal entry belongs to the session that
wrote it. Saving, clearing and replaying touch this session's entries only, plus, for recovery, those
of **dead** sessions: closed ones, ones whose process is gone from this host, ones on another host
whose heartbeat is older than ``STALE_AFTER_S``, and the ``legacy`` entries written before sessions
existed. Entries of another live instance are never marked saved, cleared or offered back here.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
import zlib
from os import PathLike
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from segstudio.core.editing.history import EditAtom, EditHistory, labels_fingerprint
from segstudio.core.io.workspace import user_project_dir, working_dir

__all__ = ["OtherSession", "ProjectStore", "STATUSES", "pid_alive", "store_path_for"]

STATUSES = ("unreviewed", "accepted", "fixed", "needs_attention")
STORE_FILE = "project.sqlite"
SCHEMA_VERSION = 2                # 2: journal entries belong to a session
LEGACY_SESSION = 0                # entries written before sessions existed: their process is gone
# A session on another host cannot be asked whether its process lives; it counts as dead once its
# heartbeat (journal writes, flushes: at least every timed autosave) is this old.
STALE_AFTER_S = 3600.0
# How long a journal write waits for another connection's write lock before it is queued instead
# (sqlite3's default is 5 s, which froze the GUI at every stroke).
JOURNAL_BUSY_TIMEOUT_MS = 100
JournalStatusCallback = Callable[[str | None], object]

_SCHEMA_BASE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    image   TEXT NOT NULL,
    op      TEXT NOT NULL CHECK (op IN ('do', 'undo', 'redo')),
    x INTEGER, y INTEGER, w INTEGER, h INTEGER,
    layer   TEXT,
    dtype   TEXT,
    mask    BLOB,
    old     BLOB,
    new     BLOB,
    saved   INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    session INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS journal_image ON journal (image, seq);
CREATE TABLE IF NOT EXISTS images (
    name    TEXT PRIMARY KEY,
    status  TEXT NOT NULL DEFAULT 'unreviewed',
    note    TEXT NOT NULL DEFAULT '',
    metrics TEXT,
    updated REAL NOT NULL
);
"""
_SCHEMA_SESSIONS = """
CREATE INDEX IF NOT EXISTS journal_session ON journal (session, image, seq);
CREATE TABLE IF NOT EXISTS sessions (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    pid       INTEGER NOT NULL,
    host      TEXT NOT NULL,
    started   REAL NOT NULL,
    heartbeat REAL NOT NULL,
    ended     INTEGER NOT NULL DEFAULT 0
);
"""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (one we may not signal counts as running)."""
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _windows_pid_alive(pid: int) -> bool:
    # os.kill(pid, 0) would terminate the process on Windows.
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)      # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5                # access denied: it exists
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259                           # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


@dataclass(frozen=True)
class OtherSession:
    """Another live app instance editing the same dataset."""

    pid: int
    host: str
    started: float


def store_path_for(dataset_root: str | PathLike) -> Path:
    """Where the store of a dataset lives by default: ``<root>/.segstudio/project.sqlite``.

    A dataset opened from a file (a COCO JSON) keeps its store in the file's folder; a dataset
    shipped with segstudio (the demo) keeps it in a per-user folder.
    """
    return working_dir(dataset_root) / STORE_FILE


# Image names made from undecodable file names carry surrogate escapes, which SQLite text cannot hold;
# they are stored as this prefix + the hex of their bytes and turned back on the way out.
_RAW_NAME = "\x00bytes:"


def _db_name(name: str) -> str:
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return _RAW_NAME + name.encode("utf-8", "surrogateescape").hex()


def _py_name(stored: str) -> str:
    if stored.startswith(_RAW_NAME):
        return bytes.fromhex(stored[len(_RAW_NAME):]).decode("utf-8", "surrogateescape")
    return stored


def _pack(atom: EditAtom) -> tuple:
    x, y, w, h = (int(v) for v in atom.bbox)
    mask = np.packbits(np.ascontiguousarray(atom.changed, dtype=bool), axis=None)
    old = np.ascontiguousarray(atom.old_values)
    new = np.ascontiguousarray(atom.new_values, dtype=old.dtype)
    return (x, y, w, h, atom.layer, old.dtype.str, zlib.compress(mask.tobytes(), 1),
            zlib.compress(old.tobytes(), 1), zlib.compress(new.tobytes(), 1))


def _unpack(row: tuple) -> EditAtom:
    x, y, w, h, layer, dtype, mask, old, new = row
    bits = np.frombuffer(zlib.decompress(mask), dtype=np.uint8)
    changed = np.unpackbits(bits, count=w * h).reshape(h, w).view(bool)
    dt = np.dtype(dtype)
    old_v = np.frombuffer(zlib.decompress(old), dtype=dt).copy()
    new_v = np.frombuffer(zlib.decompress(new), dtype=dt).copy()
    return EditAtom((x, y, w, h), changed, old_v, new_v, layer)


class ProjectStore:
    """Journal and review state of one dataset, in one SQLite file.

    Parameters
    ----------
    path : str or PathLike
        The database file; its folder is created. Use :meth:`for_dataset` to pick the usual place.
    pid, host : optional
        The process this session belongs to (this one by default; tests stand in for other instances).
    alive : callable, optional
        ``alive(pid) -> bool`` for a pid on this host; :func:`pid_alive` by default.
    clock : callable, optional
        Seconds since the epoch (``time.time`` by default), for heartbeats and their staleness.
    """

    def __init__(self, path: str | PathLike, *, pid: int | None = None, host: str | None = None,
                 alive: Callable[[int], bool] = pid_alive, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid() if pid is None else int(pid)
        self.host = socket.gethostname() if host is None else host
        self._alive, self._clock = alive, clock
        self._db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA_BASE)
            self._migrate()
            self._db.executescript(_SCHEMA_SESSIONS)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            now = self._clock()
            self.session_id = int(self._db.execute(
                "INSERT INTO sessions (pid, host, started, heartbeat) VALUES (?, ?, ?, ?)",
                (self.pid, self.host, now, now)).lastrowid)
            self._retire_dead_sessions()
            self._db.execute(f"PRAGMA busy_timeout = {JOURNAL_BUSY_TIMEOUT_MS}")
        except BaseException:
            self._db.close()
            raise
        self._queue: list[tuple[str, tuple]] = []     # journal writes not on disk yet, in order
        self.journal_problem: str | None = None       # why the last journal write failed
        self._status_callbacks: list[JournalStatusCallback] = []

    def _migrate(self) -> None:
        """Schema 1 -> 2: journal entries get a session; the existing ones are the legacy session's."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(journal)")}
        if "session" in columns:
            return
        try:
            self._db.execute(f"ALTER TABLE journal ADD COLUMN session INTEGER NOT NULL DEFAULT {LEGACY_SESSION}")
        except sqlite3.OperationalError:
            if "session" not in {row[1] for row in self._db.execute("PRAGMA table_info(journal)")}:
                raise                       # not another instance migrating at the same moment

    @classmethod
    def for_dataset(cls, dataset_root: str | PathLike, *, fallback_dir: str | PathLike | None = None
                    ) -> ProjectStore:
        """Open the store of a dataset, in the dataset if it is writable, else in a per-user folder.

        Parameters
        ----------
        dataset_root : str or PathLike
            The dataset's root folder.
        fallback_dir : str or PathLike, optional
            Folder used instead of the platformdirs user data folder when the dataset is read-only.
        """
        root = Path(dataset_root).resolve()
        try:
            return cls(store_path_for(root))
        except (OSError, sqlite3.Error):
            pass
        return cls(user_project_dir(root, fallback_dir) / STORE_FILE)

    def close(self) -> None:
        """Close the database (the WAL is checkpointed into the main file), writing queued journal
        entries first if the database takes them now. The session ends: its unsaved entries are
        offered back by the next store opened on this file."""
        self.flush_journal()
        try:
            self._db.execute("UPDATE sessions SET ended = 1 WHERE id = ?", (self.session_id,))
            self._db.execute("DELETE FROM sessions WHERE ended = 1 AND id NOT IN "
                             "(SELECT DISTINCT session FROM journal)")
        except sqlite3.Error:
            pass    # locked or read-only: the session then counts as dead once its process is gone
        self._db.close()

    # ------------------------------------------------------------------ sessions
    def _is_live(self, pid: int, host: str, heartbeat: float) -> bool:
        if host == self.host:
            return self._alive(pid)
        return self._clock() - heartbeat < STALE_AFTER_S

    def _retire_dead_sessions(self) -> None:
        """Mark the sessions found dead now as ended (their rows stay recoverable), so a pid reused
        later by an unrelated process cannot make them look alive; forget ended ones without rows."""
        rows = self._db.execute("SELECT id, pid, host, heartbeat FROM sessions WHERE ended = 0 AND id != ?",
                                (self.session_id,)).fetchall()
        dead = [(sid,) for sid, pid, host, heartbeat in rows if not self._is_live(pid, host, heartbeat)]
        self._db.executemany("UPDATE sessions SET ended = 1 WHERE id = ?", dead)
        self._db.execute("DELETE FROM sessions WHERE ended = 1 AND id NOT IN (SELECT DISTINCT session FROM journal)")

    def other_sessions(self) -> list[OtherSession]:
        """The other app instances editing this dataset now (their journal is not touched here)."""
        rows = self._db.execute("SELECT id, pid, host, started, heartbeat FROM sessions "
                                "WHERE ended = 0 AND id != ? ORDER BY id", (self.session_id,))
        return [OtherSession(pid, host, started) for _, pid, host, started, heartbeat in rows
                if self._is_live(pid, host, heartbeat)]

    def _scope(self) -> tuple[str, tuple]:
        """SQL condition and parameters for the journal entries this store may act on: its own and
        those of dead sessions (see the module docstring); never another live instance's."""
        rows = self._db.execute("SELECT id, pid, host, heartbeat FROM sessions WHERE ended = 0 AND id != ?",
                                (self.session_id,)).fetchall()
        live = [sid for sid, pid, host, heartbeat in rows if self._is_live(pid, host, heartbeat)]
        if not live:
            return "1", ()
        return f"session NOT IN ({', '.join('?' * len(live))})", tuple(live)

    def heartbeat(self) -> None:
        """Tell other hosts this session is alive (journal writes do it too); never raises."""
        try:
            self._db.execute("UPDATE sessions SET heartbeat = ? WHERE id = ?", (self._clock(), self.session_id))
        except sqlite3.Error:
            pass

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ journal
    def subscribe_journal_status(self, callback: JournalStatusCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` when journal writes start failing, ``callback(None)`` when the
        queued entries reached the database again; returns the function that unsubscribes."""
        self._status_callbacks.append(callback)
        return lambda: self._status_callbacks.remove(callback) if callback in self._status_callbacks else None

    def _set_problem(self, problem: str | None) -> None:
        if problem == self.journal_problem:
            return
        self.journal_problem = problem
        for callback in list(self._status_callbacks):
            callback(problem)

    def _journal_write(self, sql: str, params: tuple) -> int | None:
        self._queue.append((sql, params))
        return self.flush_journal()

    def flush_journal(self) -> int | None:
        """Write the queued journal entries in one transaction.

        Returns the row id of the last one written, ``None`` when they stay queued (the reason is
        ``journal_problem`` and was reported to the subscribers) or nothing was queued.
        """
        if not self._queue:
            return None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in self._queue:
                    cur = self._db.execute(sql, params)
                last = cur.lastrowid
                self._db.execute("UPDATE sessions SET heartbeat = ? WHERE id = ?",
                                 (self._clock(), self.session_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._set_problem(str(exc) or type(exc).__name__)
            return None
        self._queue.clear()
        self._set_problem(None)
        return int(last)

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass    # the transaction is gone with the failed statement

    def journal_commit(self, image_name: str, atom: EditAtom) -> int | None:
        """Record a committed stroke of ``image_name``; returns its sequence number (``None`` while
        it waits in memory, see the module docstring)."""
        return self._journal_write(
            "INSERT INTO journal (image, op, x, y, w, h, layer, dtype, mask, old, new, created, session) "
            "VALUES (?, 'do', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_db_name(image_name), *_pack(atom), time.time(), self.session_id))

    def _marker(self, image_name: str, op: str) -> int | None:
        return self._journal_write("INSERT INTO journal (image, op, created, session) VALUES (?, ?, ?, ?)",
                                   (_db_name(image_name), op, time.time(), self.session_id))

    def journal_undo(self, image_name: str) -> int | None:
        """Record that the newest stroke of ``image_name`` was undone."""
        return self._marker(image_name, "undo")

    def journal_redo(self, image_name: str) -> int | None:
        """Record that the last undone stroke of ``image_name`` was redone."""
        return self._marker(image_name, "redo")

    def mark_saved(self, image_name: str) -> None:
        """The labels of ``image_name`` were written to disk: its journal so far is no longer pending.

        The entries are kept (marked saved) so that an undo after saving can still be replayed.
        Queued like any journal write, so entries still in memory are marked too. Only this
        session's entries: another instance's unsaved strokes are not in the labels this one wrote.
        """
        self._journal_write("UPDATE journal SET saved = 1 WHERE image = ? AND saved = 0 AND session = ?",
                            (_db_name(image_name), self.session_id))

    def pending_recovery(self) -> dict[str, int]:
        """Images with journal entries (strokes, undos, redos) not yet saved to disk, and how many
        (entries still queued in memory are not counted): this session's and dead sessions'."""
        self.flush_journal()
        scope, params = self._scope()
        rows = self._db.execute(
            f"SELECT image, COUNT(*) FROM journal WHERE saved = 0 AND {scope} GROUP BY image ORDER BY image",
            params)
        return {_py_name(name): int(n) for name, n in rows}

    def replay(self, image_name: str, gt: np.ndarray, history: EditHistory | None = None, *,
               damaged: list[int] | None = None) -> np.ndarray:
        """Restore the labels of ``image_name`` as they were after its last journal entry.

        Parameters
        ----------
        image_name : str
            The image.
        gt : np.ndarray
            Its labels as last saved to disk (all ignore index for an image that had none). Not modified.
        history : EditHistory, optional
            Filled with the undo and redo stacks the session had, so undo works after a recovery; a
            document then opened on the returned labels with this history keeps the stacks.
        damaged : list, optional
            Receives the sequence numbers of strokes whose stored data cannot be decoded; they are
            skipped (their undo/redo markers too) and every other entry is applied.

        Returns
        -------
        np.ndarray
            A new array with the unsaved entries applied (this session's and dead sessions', each
            session's in its order: an undo marker only ever undoes its own session's stroke).
        """
        self.flush_journal()
        scope, params = self._scope()
        out = np.array(gt, copy=True)
        undo: list[EditAtom | None] = []     # None: a damaged stroke, kept so the markers pair up
        redo: list[EditAtom | None] = []
        rows = self._db.execute(
            "SELECT seq, op, saved, x, y, w, h, layer, dtype, mask, old, new FROM journal "
            f"WHERE image = ? AND {scope} ORDER BY session, seq", (_db_name(image_name), *params))
        for seq, op, saved, *data in rows:
            if op == "do":
                try:
                    atom = _unpack(tuple(data))
                except (zlib.error, ValueError, TypeError):
                    atom = None
                    if damaged is not None:
                        damaged.append(int(seq))
                redo.clear()
                undo.append(atom)
                undoing = False
            elif op == "undo" and undo:
                atom = undo.pop()
                redo.append(atom)
                undoing = True
            elif op == "redo" and redo:
                atom = redo.pop()
                undo.append(atom)
                undoing = False
            else:
                continue
            if atom is not None and not saved:
                x, y, w, h = atom.bbox
                values = atom.old_values if undoing else atom.new_values
                out[y:y + h, x:x + w][atom.changed] = values
        if history is not None:
            history.clear()
            for atom in undo + redo[::-1]:
                if atom is not None:
                    history.push(atom)
            for atom in redo:
                if atom is not None:
                    history.undo()
            history.fingerprint = labels_fingerprint(out)
        return out

    def clear(self, image_name: str) -> None:
        """Forget the journal of ``image_name`` (its edits were discarded or reloaded): this session's
        entries and dead sessions', never another live instance's."""
        scope, params = self._scope()
        self._journal_write(f"DELETE FROM journal WHERE image = ? AND {scope}", (_db_name(image_name), *params))

    def journal_length(self, image_name: str) -> int:
        """Number of journal entries of ``image_name`` in the database, saved or not (this session's
        and dead sessions')."""
        self.flush_journal()
        scope, params = self._scope()
        (n,) = self._db.execute(f"SELECT COUNT(*) FROM journal WHERE image = ? AND {scope}",
                                (_db_name(image_name), *params)).fetchone()
        return int(n)

    # ------------------------------------------------------------------ review state
    def _upsert(self, name: str, column: str, value: Any) -> None:
        self._db.execute(
            f"INSERT INTO images (name, {column}, updated) VALUES (?, ?, ?) "
            f"ON CONFLICT(name) DO UPDATE SET {column} = excluded.{column}, updated = excluded.updated",
            (_db_name(name), value, time.time()))

    def set_status(self, image_name: str, status: str) -> None:
        """Set the review status: one of :data:`STATUSES`."""
        if status not in STATUSES:
            raise ValueError(f"unknown review status {status!r}; expected one of {STATUSES}")
        self._upsert(image_name, "status", status)

    def status(self, image_name: str) -> str:
        """Review status of an image (``'unreviewed'`` when never set)."""
        row = self._db.execute("SELECT status FROM images WHERE name = ?", (_db_name(image_name),)).fetchone()
        return row[0] if row else "unreviewed"

    def statuses(self) -> dict[str, str]:
        """Every image with a recorded review state -> its status."""
        return {_py_name(n): s for n, s in self._db.execute("SELECT name, status FROM images ORDER BY name")}

    def set_note(self, image_name: str, note: str) -> None:
        """Store a free-text note for an image."""
        self._upsert(image_name, "note", str(note))

    def note(self, image_name: str) -> str:
        """The note of an image (empty when none)."""
        row = self._db.execute("SELECT note FROM images WHERE name = ?", (_db_name(image_name),)).fetchone()
        return row[0] if row else ""

    def set_metrics(self, image_name: str, metrics: dict) -> None:
        """Store the last computed metrics of an image (a JSON-like dict; NaN is stored as null)."""
        self._upsert(image_name, "metrics", json.dumps(_plain(metrics), allow_nan=False))

    def metrics(self, image_name: str) -> dict | None:
        """The last stored metrics of an image, or ``None``."""
        row = self._db.execute("SELECT metrics FROM images WHERE name = ?", (_db_name(image_name),)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def review_rows(self) -> list[dict]:
        """Every image with review state: ``{'name', 'status', 'note', 'metrics'}``, sorted by name."""
        rows = self._db.execute("SELECT name, status, note, metrics FROM images ORDER BY name")
        return [{"name": _py_name(n), "status": s, "note": t, "metrics": json.loads(m) if m else None}
                for n, s, t, m in rows]


def _plain(value: Any) -> Any:
    """JSON-ready copy of a metrics structure: numpy scalars and arrays unwrapped, NaN -> None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_review_statuses(dataset_root: str | PathLike) -> dict[str, str]:
    """Image name -> review status, read without joining the store as a session (read-only).

    Looks where :meth:`ProjectStore.for_dataset` puts the store (in the dataset, else the per-user
    folder); a dataset without a store, or a store that cannot be read, has no statuses.
    """
    root = Path(dataset_root).resolve()
    candidates = []
    try:
        candidates.append(store_path_for(root))
    except OSError:
        pass
    candidates.append(user_project_dir(root) / STORE_FILE)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return {_py_name(n): s for n, s in db.execute("SELECT name, status FROM images")}
            finally:
                db.close()
        except sqlite3.Error:
            continue
    return {}
