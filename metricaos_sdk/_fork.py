"""State a forked child must not inherit from its parent, and what must happen at interpreter exit.

``fork()`` copies a lock in the state it had at that instant: one that another thread of the parent held is
held forever in the child, and the child's next metered call or commit would wait on it for good. Calls
the parent had in flight are the parent's to record.

Both registries hold their owners weakly and register one hook with the interpreter, whatever the number of
meters and sinks a program makes (one hook per object would pile up for the life of the process).
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["close_at_exit", "forget_at_exit", "in_forked_child", "renew_after_fork"]

_IN_CHILD: weakref.WeakKeyDictionary[Any, list[Callable[[Any], None]]] = weakref.WeakKeyDictionary()
_AT_EXIT: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def renew_after_fork(owner: object, **factories: Callable[[], Any]) -> None:
    """In every child forked from now on, set ``owner.<name> = factory()`` for each ``name=factory`` given."""
    def renew(obj: Any) -> None:
        for name, factory in factories.items():
            setattr(obj, name, factory())

    in_forked_child(owner, renew)


def in_forked_child(owner: object, fn: Callable[[Any], None]) -> None:
    """In every child forked from now on, call ``fn(owner)`` (if ``owner`` is still alive), in registration order."""
    _IN_CHILD.setdefault(owner, []).append(fn)


def _run_in_child() -> None:
    for owner, fns in list(_IN_CHILD.items()):
        for fn in fns:
            fn(owner)


def close_at_exit(owner: object, close: Callable[[Any], None]) -> None:
    """Call ``close(owner)`` at interpreter exit if ``owner`` is still alive; latest registered first."""
    _AT_EXIT[owner] = close


def forget_at_exit(owner: object) -> None:
    """``owner`` was closed: nothing to do for it at exit."""
    _AT_EXIT.pop(owner, None)


def _close_all() -> None:
    for owner, close in reversed(list(_AT_EXIT.items())):
        close(owner)


if hasattr(os, "register_at_fork"):  # Windows: no fork
    os.register_at_fork(after_in_child=_run_in_child)
atexit.register(_close_all)
