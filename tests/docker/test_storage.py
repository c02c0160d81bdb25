"""The Docker runtime's persistent ``/data`` and memory limit, against a real dockerd and the built Gradio
sample: the named volume survives sleep (the container kept) and a redeploy (a new container), is refused
past its size with ENOSPC, and is gone with ``delete_volume``; an app over its flavor's memory is
OOM-killed and says so."""

from __future__ import annotations

import dataclasses
import secrets

import docker
import pytest

from spaceyard_builder.api import BuildResult
from spaceyard_runtime.api import AppSpec, Flavor, StorageSpec
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.docker.containers import data_volume_name
from spaceyard_runtime.errors import AppCrashed

from .conftest import spec_for, start_app

pytestmark = pytest.mark.docker
MIB = 2**20
WRITE = (
    "import errno, os\n"
    "try:\n"
    "    with open('/data/big', 'wb') as f:\n"
    "        [f.write(b'x' * 65536) for _ in range(640)]\n"
    "        f.flush(); os.fsync(f.fileno())\n"
    "    print('ok')\n"
    "except OSError as e:\n"
    "    print(errno.errorcode[e.errno])\n"
)


def _exec(client: docker.DockerClient, container_id: str, code: str) -> str:
    out = client.containers.get(container_id).exec_run(["python3", "-c", code])
    return bytes(out.output).decode().strip()


async def test_data_volume_survives_sleep_and_redeploy_is_limited_and_deleted(
    runtime: DockerRuntime, gradio_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    storage = StorageSpec(volume=f"h15data{secrets.token_hex(4)}", size_bytes=16 * MIB)
    spec = spec_for(gradio_build, space_id="h15data/storage", storage=storage)
    handle = await start_app(runtime, spec)
    await runtime.wait_ready(handle, 180)
    assert _exec(docker_client, handle.backend_id, "open('/data/kept', 'w').write('x'); print('written')") == "written"

    await runtime.suspend(handle)  # sleep
    lines: list[str] = []
    handle = await runtime.resume(handle, lines.append)
    await runtime.wait_ready(handle, 180)
    assert _exec(docker_client, handle.backend_id, "import os; print(os.listdir('/data'))") == "['kept']"

    await runtime.remove(handle)  # redeploy: another version in a new container
    spec2: AppSpec = dataclasses.replace(spec, revision="f" * 40)
    handle = await start_app(runtime, spec2)
    await runtime.wait_ready(handle, 180)
    assert "kept" in _exec(docker_client, handle.backend_id, "import os; print(os.listdir('/data'))")
    assert _exec(docker_client, handle.backend_id, WRITE) == "ENOSPC"  # 40 MiB into 16
    assert (await runtime.volume_usage(storage.volume) or 0) > 0

    await runtime.remove(handle)
    await runtime.delete_volume(storage.volume)
    assert not [v for v in docker_client.volumes.list() if v.name == data_volume_name(storage.volume)]
    assert await runtime.volume_usage(storage.volume) is None
    assert not (runtime.settings.runtime_dir / "volumes" / f"{storage.volume}.img").exists()


async def test_an_app_over_its_flavor_memory_says_out_of_memory(
    runtime: DockerRuntime, gradio_build: BuildResult
) -> None:
    spec = spec_for(gradio_build, space_id="h15data/oom", flavor=Flavor(name="tiny-test", cpu=1.0, memory_mib=48))
    handle = await start_app(runtime, spec)
    with pytest.raises(AppCrashed) as info:
        await runtime.wait_ready(handle, 120)
    assert "out of memory (limit 0.05 GiB of flavor tiny-test)" in str(info.value)
