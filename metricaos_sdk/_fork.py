"""State a forked child must not inherit from its parent.

``fork()`` copies a lock in the state it had at that instant: one that another thread of the parent held is
held forever in the child, and the child's next metered call or commit would wait on it for good. Calls
the parent had in flight are the parent's to record.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["renew_after_fork"]


def renew_after_fork(owner: object, **factories: Callable[[], Any]) -> None:
    """In every child forked from now on, set ``owner.<name> = factory()`` for each ``name=factory`` given."""
    if not hasattr(os, "register_at_fork"):  # Windows: no fork
        return
    ref = weakref.ref(owner)

    def renew() -> None:
        obj = ref()
        if obj is not None:
            for name, factory in factories.items():
                setattr(obj, name, factory())

    os.register_at_fork(after_in_child=renew)
