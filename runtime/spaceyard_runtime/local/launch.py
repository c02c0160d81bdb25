"""What a local app runs and inside which walls: command line, environment, box. No process is started here.

The app's environment is built from scratch, never from the platform's own ``os.environ``: a minimal base
(``PATH`` with the Space's environment first, a per-Space ``HOME`` and ``TMPDIR`` under
``runtime_dir/spaces/<slug>``, ``LANG``), then ``AppSpec.env``, then what the platform must set (port,
host, ``SYSTEM=spaces``, ``PYTHONPATH``...). The same :class:`LaunchPlan` serves a cold start (``argv``)
and a fork from a warm parent (``app_argv``, ``cwd``, ``env``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .. import hubpath
from ..api import AppSpec
from ..errors import AppStartError
from ..sandbox import BoxSpec, Limits
from ..settings import RuntimeSettings
from ..spacefiles import DATA_MOUNT, SpaceFiles
from ..zygote_client import ZYGOTE_SCRIPT

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
RUNNABLE_SDKS = ("gradio", "streamlit")


@dataclass
class LaunchPlan:
    """What to run and how: shared by cold start and fork."""

    argv: list[str]
    """The whole command line of a cold start."""
    app_argv: list[str]
    """``sys.argv`` the app sees."""
    cwd: str
    env: dict[str, str]
    app_path: str
    """Absolute path of the app file."""


def space_dir(settings: RuntimeSettings, spec: AppSpec) -> Path:
    """Per-Space writable directory (holds the app's ``HOME`` and ``TMPDIR``)."""
    return (settings.runtime_dir / "spaces" / spec.slug).resolve()


def base_env(artifact: str, home: Path, tmp: Path) -> dict[str, str]:
    """The minimal base of every app's environment (creates ``home`` and ``tmp``)."""
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{Path(artifact).resolve() / 'bin'}:{BASE_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp),
    }


def platform_env(settings: RuntimeSettings, port: int | None, app_dir: Path | None) -> dict[str, str]:
    """What the platform sets for every app, over the Space's own variables."""
    env = {
        "GRADIO_SERVER_NAME": settings.app_host,
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "SYSTEM": "spaces",
    }
    if port is not None:
        env.update(GRADIO_SERVER_PORT=str(port), PORT=str(port))
    if app_dir is not None:
        env["PYTHONPATH"] = str(Path(app_dir).resolve())
    return env


def app_env(settings: RuntimeSettings, spec: AppSpec, port: int) -> dict[str, str]:
    """The app's whole environment: clean base, then ``spec.env``, then what the platform sets."""
    space = space_dir(settings, spec)
    env = base_env(spec.artifact, space / "home", space / "tmp")
    env.update(spec.env)
    env.update(platform_env(settings, port, spec.app_dir))
    return env


def plan(settings: RuntimeSettings, spec: AppSpec, port: int) -> LaunchPlan:
    """The command line, working directory and environment of ``spec``'s app listening on ``port``."""
    if spec.sdk not in RUNNABLE_SDKS:
        raise AppStartError(f"sdk: {spec.sdk} cannot run on the local runtime (only gradio and streamlit)")
    if spec.app_dir is None:
        raise AppStartError("the local runtime needs the Space's checkout (app_dir)")
    python = Path(spec.artifact).resolve() / "bin" / "python"
    if not python.exists():
        raise AppStartError(f"the Space's Python environment is missing ({spec.artifact})")
    app_dir = Path(spec.app_dir).resolve()
    app_path = str(app_dir / spec.app_file)
    if spec.sdk == "gradio":
        argv = [str(python), spec.app_file]
    else:
        argv = [
            str(python),
            "-m",
            "streamlit",
            "run",
            spec.app_file,
            "--server.port",
            str(port),
            "--server.address",
            settings.app_host,
            "--server.headless",
            "true",
            "--server.enableXsrfProtection",
            "false",
            "--server.enableCORS",
            "false",
            "--browser.gatherUsageStats",
            "false",
        ]
    return LaunchPlan(
        argv=argv, app_argv=argv[1:], cwd=str(app_dir), env=app_env(settings, spec, port), app_path=app_path
    )


def make_readable(*dirs: Path) -> None:
    """Let the Space's user into directories the platform made private (0700: exports, environments);
    they are bound read-only into the Space's own box, the only place it can reach them from."""
    for path in dirs:
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o055)


def limits(settings: RuntimeSettings, spec: AppSpec) -> Limits:
    """The flavor's memory and CPU, scaled by the operator's settings, and the process limit."""
    flavor = spec.flavor
    memory = int(flavor.memory_mib * 2**20 * settings.local_memory_scale)
    cpu = flavor.cpu * settings.local_cpu_scale
    return Limits(
        flavor=flavor.name,
        memory_bytes=memory or None,
        cpu=cpu or None,
        pids=settings.local_pids_limit or None,
    )


def box_spec(settings: RuntimeSettings, spec: AppSpec, kind: str, code: Path) -> BoxSpec:
    """What a box of ``spec`` sees: ``code`` (the checkout, or all of the Space's checkouts for a warm
    parent), its environment and interpreter read-only; its HOME and TMPDIR read-write."""
    env_dir = Path(spec.artifact).resolve()
    python = Path(os.path.realpath(env_dir / "bin" / "python"))
    ro = [code, env_dir]
    make_readable(code, env_dir)
    interpreter = python.parents[1]
    if not interpreter.is_relative_to("/usr") and not interpreter.is_relative_to(env_dir):
        ro.append(interpreter)
    if kind == "zygote":
        ro.append(ZYGOTE_SCRIPT.resolve())
    space = space_dir(settings, spec)
    view = hubpath.cache_view(settings.runtime_dir, spec.slug)  # HF_HUB_CACHE, written by the relay only
    ro.append(view)
    return BoxSpec(
        space_id=spec.space_id,
        kind=kind,
        hub_cache=view,
        ro=tuple(ro),
        rw=(space / "home", space / "tmp"),
        home=space / "home",
        limits=limits(settings, spec),
        mounts=data_mounts(settings, spec),
    )


def data_mounts(settings: RuntimeSettings, spec: AppSpec) -> tuple[tuple[Path, str], ...]:
    """The Space's persistent storage at ``/data`` (:mod:`..loopvolumes`), if it has any."""
    if spec.storage is None:
        return ()
    return ((SpaceFiles(settings.runtime_dir).data_dir(spec.space_id, spec.storage), DATA_MOUNT),)
