"""A background thread's output goes where the thread was started, under ipykernel 6.29 and 7.

ipykernel sends each line of output with a *parent*: the message (a cell's execute request,
a widget click) it answers, and the front end puts it under that cell. ipykernel 6.29 gave
a new thread the parent of the code that started it (ipykernel #1186); ipykernel 7 no
longer guesses (#1451): a thread that sets no parent writes under whatever the kernel
handled last. The form's Run goes on in a thread while the user runs other cells, so its
warnings ("every fold of X failed"), a fit's prints and its errors went under an unrelated
later cell. So the parent is read where the thread is started, in the thread answering the
cell or the click (`current_parent`), and set again in the thread (`output_to`).

What is and is not written from a thread in mixcv_jupyter:

- the form's run (`Configurator.start`) runs the engine, the live view and the explorer
  in one thread, started by `start_thread`: its stream output and displays follow the
  parent captured at the start;
- the live view of a ``%%mixcv`` cell (`LiveDashboard`) and the Stop button's handler run
  in the kernel's main thread, whose parent ipykernel sets for each message;
- the form's live view and status are widget values: comm messages, which reach their
  widget whatever their parent.

The ipykernel calls used are public: ``shell.get_parent()`` (ipykernel ≥ 6),
``shell.set_thread_parent``/``reset_thread_parent`` (this thread only, ipykernel 7 after
#1546) and, before those, ``shell.set_parent`` in the thread, as #1451 advises (it also
moves ipykernel's fallback for threads that set nothing, which the main thread resets on
its next message). Outside a kernel (plain IPython, tests with a stand-in shell) these are
absent and nothing is done.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["current_parent", "output_to", "start_thread"]


def _shell(shell: Any = None) -> Any:
    if shell is not None:
        return shell
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of mixcv_jupyter
        return None
    return get_ipython()


def current_parent(shell: Any = None) -> dict[str, Any] | None:
    """The message the calling thread's output answers (None outside a kernel, or when there is none).

    Call it in the thread that starts a background thread: the kernel's main thread knows the
    cell (or the click) it is answering; the started thread does not.
    """
    get = getattr(_shell(shell), "get_parent", None)
    if get is None:
        return None
    parent = get()
    return parent if isinstance(parent, dict) and parent.get("header") else None


@contextlib.contextmanager
def output_to(parent: dict[str, Any] | None, shell: Any = None) -> Iterator[None]:
    """Within the block, the calling thread's output answers ``parent`` (a `current_parent`)."""
    ip = _shell(shell)
    if parent is None or ip is None:
        yield
        return
    set_thread = getattr(ip, "set_thread_parent", None)
    reset_thread = getattr(ip, "reset_thread_parent", None)
    if set_thread is not None and reset_thread is not None:
        tokens = set_thread(parent)   # this thread only: other threads keep theirs
        try:
            yield
        finally:
            reset_thread(tokens)
        return
    set_parent = getattr(ip, "set_parent", None)
    if set_parent is not None:
        set_parent(parent)   # ipykernel 6.29 to 7 before #1546: the one call there is
    yield


def start_thread(target: Callable[[], Any], name: str, shell: Any = None) -> threading.Thread:
    """Start a daemon thread running ``target`` whose output goes where this call's output goes."""
    parent = current_parent(shell)

    def run() -> None:
        with output_to(parent, shell):
            target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
