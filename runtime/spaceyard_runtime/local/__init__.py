"""Local runtime: every Space runs as processes on this machine, inside walls (:mod:`spaceyard_runtime.sandbox`).

With the default sandbox (``local_sandbox="bwrap"``) each cold app and each Space's warm parent runs in
its own *box*: bubblewrap namespaces (pid, network, IPC, UTS, mount, cgroup), the Space's own
unprivileged uid, a filesystem view of its code, environment and interpreter (read-only) and its own
HOME and TMPDIR, cgroup limits from the flavor. The app listens on port 7860 of its own loopback; its
:class:`~spaceyard_runtime.api.Endpoint` names the box's network namespace (:mod:`.netns`), where the
gateway and the readiness probe create their sockets. With ``local_sandbox="none"`` apps are host
processes on a free loopback port (trusted Spaces only).

Two ways to start an app, said in the run log (second line, after the Hub-style startup banner) and in
:attr:`AppHandle.start_mode`:

* ``cold``: ``<env>/bin/python app.py`` (Gradio) or ``python -m streamlit run app.py ...`` (Streamlit) in
  a new box, cwd the Space's checkout.
* ``fork``: the app is forked from the Space's warm parent (a *zygote*, :mod:`spaceyard_runtime.zygote`)
  that has already imported Gradio and ``AppSpec.preload_modules``, and runs inside the warm parent's box:
  the same walls as a cold start, ~10x faster. One warm parent per (Space, environment, preload modules),
  the idle ones within ``RuntimeSettings.light_sleep_memory_mib`` of measured memory (PSS; least recently
  used go first). A sleeping Space keeps only its warm parent (light sleep: ``sleep_cost`` is its PSS)
  until ``deep_sleep`` or the budget ends it (its next wake is cold). A box holds one app: while the warm
  parent serves one version, another
  version of the Space starts cold. Used for Gradio Spaces when ``RuntimeSettings.fast_wake`` is on and
  the fork would behave like a cold start (:func:`spaceyard_runtime.zygote.fork_blockers`); otherwise,
  or if the warm parent is not ready or fails, the start is cold and the log line says why. The first
  start of a Space is cold and warms its parent in the background; :meth:`LocalRuntime.prewarm` warms one
  ahead of time. Forked apps also get a quiet Gradio queue (no 1 ms idle poll), unless
  ``quiet_queue=False``.

``start``/``resume`` both go through the above (``resume`` is a fresh start of the same spec, forked when
possible); ``suspend``/``remove`` stop (whatever the app left in its box goes with it); ``forget`` ends a
deleted Space's warm parent; ``aclose`` stops the apps and the warm parents. An app killed for its
memory limit ends with the reason ``out of memory (limit N GiB of flavor X)``.

The app's environment is built from scratch, never from the platform's own ``os.environ``: a minimal
base (``PATH`` with the Space's environment first, a per-Space ``HOME`` and ``TMPDIR`` under
``runtime_dir/spaces/<slug>``, ``LANG``), then ``AppSpec.env``, then what the platform must set (port,
host, ``SYSTEM=spaces``, ``PYTHONPATH``...). Output is read line by line from pipes and handed to the
``log`` sink, for forked apps too (their pipes are passed to the warm parent with ``SCM_RIGHTS``).
"""

from ..output import startup_banner
from ..readiness import probe_http
from ..sandbox import free_port
from .launch import LaunchPlan
from .runtime import LocalRuntime

__all__ = ["LaunchPlan", "LocalRuntime", "free_port", "probe_http", "startup_banner"]
