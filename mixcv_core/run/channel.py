"""Worker processes' events to the calling process, over one local connection per worker.

A ``multiprocessing`` manager served this queue before: a process forked from the calling
one, which shares every page with it until either writes, and the calling process writes
all over its heap while a run goes on (Python's reference counts and garbage collector);
on a 1M-row run the manager ended up holding 0.3-0.4 GiB of copies, a fifth of the
run's memory. Here the calling process listens on a local socket (a named pipe on
Windows) with a random key, as the manager did, and each worker connects once.

Nothing is lost or reordered when a task ends: a worker sends only after the calling
process has registered its connection (it waits for a sign that it has), and a task
returns after its last event is written, so once its future is done every event it sent
is ready to be read (`EventChannel.receive`). Unlike the manager, nothing buffers events
beyond the operating system's socket buffer: a worker sending a large one (a fitted
forest) waits until the calling process reads it, which it does every few hundredths of
a second between observers' calls.
"""

from __future__ import annotations

import os
import pickle  # noqa: S403 - only our own workers' events, over a connection that checked their key
import threading
from multiprocessing.connection import Client, Connection, Listener, wait
from typing import Any

__all__ = ["EventChannel", "EventSender"]


class EventSender:
    """The worker's end: ``put(event)`` sends it to the calling process (picklable, sent with each task)."""

    def __init__(self, address: Any, key: bytes) -> None:
        self.address, self.key = address, key

    def put(self, item: Any) -> None:
        """Send ``item``: bytes as they are (packed events), anything else pickled."""
        data = item if isinstance(item, bytes) else pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        conn, lock = _connection(self.address, self.key)
        with lock:   # a task's trials may report from several threads at once
            conn.send_bytes(data)


#: In a worker process: its connection to the run it works for, with the lock its senders share.
_CONNECTION: dict[Any, tuple[Connection, threading.Lock]] = {}
_CONNECTING = threading.Lock()


def _connection(address: Any, key: bytes) -> tuple[Connection, threading.Lock]:
    with _CONNECTING:
        held = _CONNECTION.get(address)
        if held is None:
            for conn, _ in _CONNECTION.values():   # a run that has ended
                conn.close()
            _CONNECTION.clear()
            conn = Client(address, authkey=key)
            conn.recv_bytes()   # registered by the calling process: what is sent from now on is read
            held = _CONNECTION[address] = (conn, threading.Lock())
        return held


class EventChannel:
    """The calling process's end: accepts workers' connections and reads what they sent."""

    def __init__(self) -> None:
        key = os.urandom(32)
        self._listener = Listener(authkey=key)
        self.sender = EventSender(self._listener.address, key)
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = self._stopped = False
        threading.Thread(target=self._accept, name="mixcv-events", daemon=True).start()

    def _accept(self) -> None:
        # Ends only by accepting a connection once the channel is closed (`close` makes that
        # last one): a thread that checked the flag before accepting could miss it and leave
        # `close` waiting for its handshake for good.
        while True:
            try:
                conn = self._listener.accept()
            except Exception:  # noqa: BLE001 - one failed handshake (a dead worker, a wrong key) ends only itself
                if self._stopped:   # the listener itself is closed
                    return
                continue  # noqa: S112
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._connections.append(conn)
            try:
                conn.send_bytes(b"")
            except OSError:
                pass   # its worker died at once; `receive` drops the connection

    def receive(self) -> list[bytes]:
        """Everything the workers have sent so far, each worker's in the order sent."""
        out: list[bytes] = []
        with self._lock:
            open_ = list(self._connections)
        while open_:
            ready = wait(open_, timeout=0)
            if not ready:
                break
            for conn in ready:
                try:
                    out.append(conn.recv_bytes())  # type: ignore[union-attr]
                except (EOFError, OSError):
                    # Its worker is gone (done with the run, crashed, or stopped by a timeout).
                    open_.remove(conn)  # type: ignore[arg-type]
                    with self._lock:
                        self._connections.remove(conn)  # type: ignore[arg-type]
                    conn.close()  # type: ignore[union-attr]
        return out

    def close(self) -> None:
        """Stop listening and close every connection (workers connect anew for the next run)."""
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        # Closing the listener does not wake a thread waiting in accept (on Linux): a last
        # connection of our own does, and the thread then sees the channel closed.
        try:
            Client(self.sender.address, authkey=self.sender.key).close()
        except OSError:
            pass
        self._listener.close()
        self._stopped = True


def loads(data: bytes) -> Any:
    """An item `EventSender.put` sent."""
    return pickle.loads(data)  # noqa: S301 - written by this run's workers, which proved the key
