"""Child processes that die with their parent: Linux's ``PR_SET_PDEATHSIG``.

``subprocess.Popen(..., preexec_fn=die_with_parent())`` makes the kernel send the child ``SIGKILL`` when
the thread that started it ends, however it ends (``kill -9`` included), so a crashed control plane
leaves no worker behind and a killed worker leaves no installer writing into a half-built environment.
Start such children from a long-lived thread (the event loop's, or the worker's main thread): the
signal follows the *thread*, not the process.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: no dlopen in the child


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
