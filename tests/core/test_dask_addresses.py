"""A scheduler address that accepts but never answers, or answers in another protocol, is
refused in bounded time with a message that says so (issue 22, item 12): no endless hang,
no "MemoryError: Unable to allocate 3.07 EiB"."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mixcv_core import CrossValidation
from mixcv_core.errors import SpecError
from mixcv_core.run import cluster
from mixcv_core.run.events import RunStarted
from mixcv_core.synthesizer import generate_grouped_regression

pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")


@pytest.fixture
def listener():
    """A local TCP port that accepts connections and then either stays silent or speaks HTTP."""
    servers = []

    def start(reply: bytes | None) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        servers.append(srv)
        held = []

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                held.append(conn)
                if reply is not None:
                    conn.sendall(reply)
        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()


def _perform(address, events):
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
    return (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
            .set_run(backend="dask", scheduler=address, store=False, observers=[events.append]).perform())


def test_an_address_that_accepts_but_never_answers_is_refused_in_bounded_time(listener, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    address = listener(None)
    events: list = []
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="accepted the connection but no Dask scheduler answered") as info:
        _perform(address, events)
    assert info.value.field == "scheduler" and time.perf_counter() - t0 < 30
    assert not [e for e in events if isinstance(e, RunStarted)]


def test_an_address_speaking_another_protocol_is_named_as_not_a_scheduler(listener, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    address = listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 20)
    with pytest.raises(SpecError) as info:
        _perform(address, [])
    assert "not as a Dask scheduler" in info.value.message and "MemoryError" not in info.value.message
