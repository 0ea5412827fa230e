"""Ctrl-C handling of the `metagen` process, kept apart from heavy imports.

The first SIGINT only sets a flag and prints a notice on stderr. The command stops at its next check
(between search phases, at a progress update, before writing results) and exits with code
130. Raising KeyboardInterrupt at once is not safe while JAX starts its backend or runs a
callback: the exception can be swallowed ("Exception ignored in ...") or abort the process.
A second SIGINT raises KeyboardInterrupt immediately, for a user who will not wait.
`main` installs the handler before JAX is imported.
"""

from __future__ import annotations

import signal
import sys
import threading

_pending = False
_previous_unraisable_hook = sys.unraisablehook


def install() -> object:
    """Route SIGINT through the flag (main thread only) and return the previous handler.

    Also keeps Python from printing "Exception ignored in ..." with a traceback for the
    KeyboardInterrupt of a second SIGINT that a callback swallowed: the flag carries it.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if sys.unraisablehook is not _quiet_unraisable_interrupt:
        global _previous_unraisable_hook
        _previous_unraisable_hook = sys.unraisablehook
        sys.unraisablehook = _quiet_unraisable_interrupt
    return signal.signal(signal.SIGINT, _handle)


def restore(previous: object) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)


def pending() -> bool:
    """Return whether a SIGINT arrived that no part of the command has acted on yet."""
    return _pending


def clear() -> None:
    global _pending
    _pending = False


def _handle(number, frame) -> None:
    global _pending
    if _pending:
        raise KeyboardInterrupt
    _pending = True
    print("interrupt received: stopping at the next step (Ctrl-C again to stop at once)", file=sys.stderr,
          flush=True)


def _quiet_unraisable_interrupt(unraisable) -> None:
    if unraisable.exc_type is KeyboardInterrupt and _pending:
        return
    _previous_unraisable_hook(unraisable)
