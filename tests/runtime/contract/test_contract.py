"""The Runtime contract (``spaceyard_runtime.api``), checked against every runtime (see ``conftest.py``).

Each test runs on every backend; where backends legitimately differ, the test reads the runtime's own
documented :class:`~spaceyard_runtime.api.Capabilities`, never its name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import time
from collections.abc import Awaitable, Callable

import pytest

from spaceyard_runtime.api import AppHandle, AppState, Endpoint, Runtime
from spaceyard_runtime.errors import AppCrashed, AppStartError, AppStartTimeout
from spaceyard_runtime.netns import open_connection
from tests.runtime.contract.conftest import Harness

READY_TIMEOUT = 120.0
"""Generous: a cold pod pulls its image; the local and Docker apps answer in about a second."""
PLATFORM_SECRET = "h13contract-platform-secret-" + os.urandom(4).hex()


async def http_get(endpoint: Endpoint, path: str = "/", within: float = 0.0) -> tuple[int, str]:
    """``GET path`` on the endpoint (inside its network namespace if it has one); connection refusals
    are retried for ``within`` seconds, then raised."""
    deadline = time.monotonic() + within
    while True:
        try:
            reader, writer = await asyncio.wait_for(open_connection(endpoint.host, endpoint.port, endpoint.netns), 10)
            break
        except (OSError, TimeoutError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {endpoint.host}\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout:g} s: {what}")
        await asyncio.sleep(0.2)


async def serves(endpoint: Endpoint) -> bool:
    try:
        status, body = await http_get(endpoint)
    except (OSError, TimeoutError, IndexError, ValueError):
        return False
    return status == 200 and body.startswith("contract ok")


async def gone(endpoint: Endpoint) -> bool:
    """The app no longer answers there (whatever else may: an address of a removed Docker network is
    routed to the host's default gateway)."""
    return not await serves(endpoint)


async def ready(h: Harness, handle: AppHandle, runtime: Runtime | None = None) -> None:
    await (runtime or h.runtime).wait_ready(handle, READY_TIMEOUT)


async def test_start_is_prompt_then_ready_serves_logs_and_stop_is_idempotent(harness: Harness) -> None:
    rt = harness.runtime
    lines: list[str] = []
    handle = await harness.start(harness.spec(env={"GREETING": "hi"}), lines.append)
    assert handle.spec.space_id.startswith("h13contract/") and handle.backend_id
    assert (await rt.poll(handle)).state in (AppState.STARTING, AppState.RUNNING, AppState.PENDING)

    await ready(harness, handle)
    status, body = await http_get(handle.endpoint, within=rt.capabilities.endpoint_delay)
    assert (status, body) == (200, "contract ok hi\n")
    assert (await rt.poll(handle)).state is AppState.RUNNING

    assert re.fullmatch(r"===== Application Startup at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d =====", lines[0])

    async def logged(line: str) -> bool:
        return any(line in seen for seen in lines)

    await eventually(lambda: logged("contract app booting (ok)"), "the app's stdout in the log sink")
    await eventually(lambda: logged("contract app stderr line"), "the app's stderr in the log sink")
    await eventually(lambda: logged("request served /"), "a line printed while serving")
    assert all("\n" not in line for line in lines)

    await rt.stop(handle, grace=2.0)
    assert (await rt.poll(handle)).state is AppState.EXITED
    await eventually(lambda: gone(handle.endpoint), "the stopped app no longer answers")
    await rt.stop(handle, grace=2.0)  # idempotent: already gone
    assert (await rt.poll(handle)).state is AppState.EXITED


async def test_the_app_gets_its_spec_env_and_no_platform_secret(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPACEYARD_H13CONTRACT_SECRET", PLATFORM_SECRET)  # the platform process's own secret
    monkeypatch.setenv("HF_TOKEN", PLATFORM_SECRET)
    rt = harness.runtime
    spec = harness.spec(env={"GREETING": "env", "SPACE_AUTHOR_NAME": "h13contract", "MY_SECRET": "s3cret"})
    handle = await harness.start(spec, lambda line: None)
    await ready(harness, handle)
    status, body = await http_get(handle.endpoint, "/env", within=rt.capabilities.endpoint_delay)
    env = json.loads(body)
    assert status == 200
    assert {k: env.get(k) for k in spec.env} == dict(spec.env)
    assert not [k for k, v in env.items() if PLATFORM_SECRET in v or k.startswith("SPACEYARD_")]


async def test_a_crash_before_ready_is_app_crashed_with_exit_code_and_last_lines(harness: Harness) -> None:
    rt = harness.runtime
    handle = await harness.start(harness.spec("crash"), lambda line: None)
    with pytest.raises(AppCrashed) as info:
        await ready(harness, handle)
    assert str(info.value)
    assert info.value.exit_code == 3
    tail = info.value.log_tail.splitlines()  # stdout and stderr may interleave either way
    assert "ModuleNotFoundError: No module named 'contract_missing'" in tail and "loading step 59" in tail
    assert "loading step 0" not in tail and 10 <= len(tail) <= 40  # the last lines, not the whole output
    assert (await rt.poll(handle)).state is not AppState.RUNNING
    await rt.stop(handle, grace=1.0)  # an app that is already gone: no error
    assert (await rt.poll(handle)).state is AppState.EXITED


async def test_a_missing_artifact_is_an_app_start_error(harness: Harness) -> None:
    spec = dataclasses.replace(harness.spec(), artifact=harness.missing_artifact)
    with pytest.raises(AppStartError) as info:  # from start, or from wait_ready where the backend learns it later
        handle = await harness.start(spec, lambda line: None)
        await ready(harness, handle)
    assert str(info.value)


async def test_an_app_that_never_answers_is_a_start_timeout(harness: Harness) -> None:
    handle = await harness.start(harness.spec("slow"), lambda line: None)  # returned: start does not wait
    assert (await harness.runtime.poll(handle)).state is AppState.STARTING
    with pytest.raises(AppStartTimeout):
        await harness.runtime.wait_ready(handle, timeout=2.0)
    assert (await harness.runtime.poll(handle)).state is not AppState.RUNNING


async def test_an_exit_after_ready_is_noticed(harness: Harness) -> None:
    rt = harness.runtime
    handle = await harness.start(harness.spec(), lambda line: None)
    await ready(harness, handle)
    _, boot = await http_get(handle.endpoint, "/boot", within=rt.capabilities.endpoint_delay)
    status, _ = await http_get(handle.endpoint, "/exit")
    assert status == 200
    if rt.capabilities.restarts_crashed_apps:
        # the backend restarts it: another process serves, and poll says it runs
        async def restarted() -> bool:
            try:
                return (await http_get(handle.endpoint, "/boot"))[1] not in ("", boot)
            except (OSError, TimeoutError, IndexError, ValueError):
                return False

        await eventually(restarted, "a restarted app serves", timeout=90)
        await eventually(lambda: _is(rt, handle, AppState.RUNNING), "poll reports the restarted app running", 30)
    else:
        await eventually(lambda: _is(rt, handle, AppState.EXITED), "poll reports the exit")
        assert (await rt.poll(handle)).exit_code == 7


async def _is(rt: Runtime, handle: AppHandle, wanted: AppState) -> bool:
    return (await rt.poll(handle)).state is wanted


async def test_suspend_frees_the_app_and_resume_serves_the_same_spec(harness: Harness) -> None:
    rt = harness.runtime
    spec = harness.spec(env={"GREETING": "wake"})
    handle = await harness.start(spec, lambda line: None)
    await ready(harness, handle)

    await rt.suspend(handle)
    assert (await rt.poll(handle)).state is AppState.EXITED
    await eventually(lambda: gone(handle.endpoint), "the sleeping app no longer answers")

    woken_lines: list[str] = []
    woken = await rt.resume(handle, woken_lines.append)
    harness.handles.append(woken)
    assert woken_lines[0].startswith("===== Application Startup at ")
    assert woken.spec == spec
    assert (woken.backend_id == handle.backend_id) is rt.capabilities.wakes_in_place
    await ready(harness, woken)
    status, body = await http_get(woken.endpoint, within=rt.capabilities.endpoint_delay)
    assert (status, body) == (200, "contract ok wake\n")
    assert (await rt.poll(woken)).state is AppState.RUNNING
    await eventually(
        lambda: _async(any("contract app booting (ok)" in line for line in woken_lines)),
        "the woken app's output reaches resume's log sink",
    )


async def _async(value: bool) -> bool:
    return value


async def test_an_unknown_handle_is_gone_for_every_method(harness: Harness) -> None:
    rt = harness.runtime
    spec = harness.spec()
    handle = AppHandle(spec=spec, endpoint=Endpoint("127.0.0.1", 9), backend_id="h13contract-never-started",
                       started_at=time.time())  # fmt: skip
    assert (await rt.poll(handle)).state is AppState.EXITED
    with pytest.raises(AppCrashed):
        await rt.wait_ready(handle, timeout=5.0)
    await rt.stop(handle, grace=1.0)
    await rt.remove(handle)
    await rt.forget(spec.space_id)
    assert (await rt.poll(handle)).state is AppState.EXITED


async def test_restart_recovery_reattaches_or_ends_what_was_left(harness: Harness) -> None:
    rt = harness.runtime
    spec = harness.spec(env={"GREETING": "again"})
    handle = await harness.start(spec, lambda line: None)
    await ready(harness, handle)
    state = json.loads(json.dumps(rt.get_state(handle)))  # what the platform stores: JSON

    successor = harness.successor()  # the platform process after a restart, on the same settings
    lines: list[str] = []
    adopted = await successor.load_state(spec, state, lines.append)
    if rt.capabilities.reattach:
        assert adopted is not None and adopted.backend_id == handle.backend_id
        harness.handles.append(adopted)
        assert (await successor.poll(adopted)).state is AppState.RUNNING
        await successor.wait_ready(adopted, READY_TIMEOUT)
        status, body = await http_get(adopted.endpoint, within=rt.capabilities.endpoint_delay)
        assert (status, body) == (200, "contract ok again\n")
        await eventually(
            lambda: _async(any("request served /" in line for line in lines)),
            "the adopted app's output reaches the new log sink",
        )
    else:
        assert adopted is None
        await eventually(lambda: gone(handle.endpoint), "what the previous process left running is ended")
