"""The form's background run writes under the cell that started it, in a real kernel (ipykernel #1451).

ipykernel 7 sends a thread's output under whatever the kernel handled last unless the
thread sets its parent; the run would then write under the next cell the user runs. The
kernel here is a real one (jupyter_client), the run the form's own (`Configurator.start`);
the run is held until a second cell has started, and what it prints then must still carry
the first cell's message as its parent.
"""

from __future__ import annotations

import os
import queue
import time

import pytest

from mixcv_jupyter.threads import current_parent, output_to, start_thread

START = """
import threading
import mixcv_core.engine as engine
from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter import Configurator

X, y, group, _ = generate_grouped_regression(6, 15, n_slopes=1, noise_level=0.5, random_seed=0)
form = Configurator(X.assign(y=y, group=group))
form.target.value, form.groups.value = "y", "group"
next(c for c in form.cards if c.label == "LinearModel").enabled.value = True
form.outer_k.value, form.no_store.value = 3, True
gate, original = threading.Event(), engine.run

def held(*args, **kwargs):          # the form's run, held until the next cell has started
    gate.wait(120)
    print("printed by the form's run")
    return original(*args, **kwargs)

engine.run = held
form.start()
"""
NEXT = """
gate.set()
form._thread.join(300)
print("status:", form.status.value)
"""


def _outputs(kc, until_idle_of: set[str], deadline: float) -> list[dict]:
    """Every stream message on iopub until each request in ``until_idle_of`` has gone idle."""
    streams, busy = [], set(until_idle_of)
    while busy:
        try:
            msg = kc.get_iopub_msg(timeout=max(1.0, deadline - time.time()))
        except queue.Empty:
            pytest.fail(f"the kernel did not finish within the time allowed; streams so far: {streams}")
        parent = msg["parent_header"].get("msg_id")
        if msg["msg_type"] == "stream":
            streams.append({"parent": parent, "text": msg["content"]["text"]})
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            busy.discard(parent)
        elif msg["msg_type"] == "error":
            pytest.fail("a cell raised:\n" + "\n".join(msg["content"]["traceback"]))
    return streams


@pytest.mark.notebook
def test_the_forms_background_run_prints_under_the_cell_that_started_it_not_the_next_one():
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})   # PYTHONPATH: this worktree
    try:
        deadline = time.time() + 300
        first = kc.execute(START)
        second = kc.execute(NEXT)   # runs while the form's run waits, so it is the kernel's latest parent
        streams = _outputs(kc, {first, second}, deadline)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    run_lines = [s for s in streams if "printed by the form's run" in s["text"]]
    assert run_lines, streams
    assert all(s["parent"] == first for s in run_lines), (first, second, streams)
    status = "".join(s["text"] for s in streams if s["parent"] == second)
    assert "status: finished" in status, streams   # the run itself went through


class Shell:
    """A stand-in for ipykernel's shell: records the parent each thread sets."""

    def __init__(self, thread_api: bool) -> None:
        self.parent: dict = {"header": {"msg_id": "cell-1"}}
        self.seen: list[tuple[str, object]] = []
        if thread_api:
            self.set_thread_parent = lambda p: (self.seen.append(("thread", p)), "token")[1]
            self.reset_thread_parent = lambda t: self.seen.append(("reset", t))

    def get_parent(self):
        return self.parent

    def set_parent(self, p):
        self.seen.append(("global", p))


@pytest.mark.parametrize(("thread_api", "calls"), [(True, ["thread", "reset"]), (False, ["global"])])
def test_the_started_thread_sets_the_parent_read_where_it_was_started(thread_api, calls):
    shell = Shell(thread_api)
    ran = []
    thread = start_thread(lambda: ran.append(True), "t", shell=shell)
    shell.parent = {"header": {"msg_id": "cell-2"}}   # the kernel moves on
    thread.join(10)
    assert ran == [True]
    assert [kind for kind, _ in shell.seen] == calls
    assert shell.seen[0][1] == {"header": {"msg_id": "cell-1"}}


def test_outside_a_kernel_nothing_is_set():
    class Plain:   # plain IPython, or the tests' stand-in shell: no parent to speak of
        pass

    assert current_parent(Plain()) is None
    with output_to(None, Plain()):
        pass
