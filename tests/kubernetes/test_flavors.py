"""The flavors file: the shipped default, the loader's errors, the Hub hardware listing."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from spaceyard_runtime.api import Flavor
from spaceyard_runtime.flavors import (
    DEFAULT_FLAVORS_FILE,
    ClusterFlavor,
    FlavorsFileError,
    UnknownFlavor,
    get_flavor,
    hardware_info,
    load_flavors,
    parse_flavors,
)

HUB_NAMES = [
    "cpu-basic",
    "cpu-upgrade",
    "t4-small",
    "t4-medium",
    "l4x1",
    "l4x4",
    "a10g-small",
    "a10g-large",
    "a10g-largex2",
    "a10g-largex4",
    "a100-large",
]


def test_default_file_has_the_hub_flavors_as_flavor_objects() -> None:
    flavors = load_flavors(None)
    assert set(HUB_NAMES) <= set(flavors)
    assert all(isinstance(f, Flavor) and f.name == name for name, f in flavors.items())
    basic = flavors["cpu-basic"]
    assert (basic.cpu, basic.memory_mib, basic.gpus, basic.node_selector, basic.tolerations) == (2.0, 16384, 0, {}, ())
    assert isinstance(basic, ClusterFlavor) and basic.cpu_request == 0.5 and basic.memory_request_mib == 2048


@pytest.mark.parametrize("name", [n for n in HUB_NAMES if not n.startswith("cpu")])
def test_gpu_flavors_have_gpus_a_pool_and_a_gpu_toleration(name: str) -> None:
    flavor = load_flavors()[name]
    assert flavor.gpus >= 1 and flavor.accelerator and flavor.node_pool
    assert flavor.node_selector or (isinstance(flavor, ClusterFlavor) and flavor.affinity)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in flavor.tolerations


def test_hub_specs_from_the_reference_table() -> None:
    flavors = load_flavors()
    assert (flavors["a10g-largex4"].gpus, flavors["a10g-largex4"].cpu, flavors["a10g-largex4"].memory_mib) == (
        4,
        48.0,
        184 * 1024,
    )
    assert flavors["l4x4"].gpus == 4 and flavors["a100-large"].unit_cost_usd == 2.5


def test_unknown_flavor_error_lists_valid_names() -> None:
    flavors = load_flavors()
    with pytest.raises(UnknownFlavor) as err:
        get_flavor(flavors, "h100x8")
    message = str(err.value)
    assert "'h100x8'" in message and "cpu-basic" in message and "a100-large" in message
    assert isinstance(err.value, KeyError)
    assert get_flavor(flavors, "t4-small").name == "t4-small"


def test_custom_file_and_quantities(tmp_path: Path) -> None:
    path = tmp_path / "flavors.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "pools": {
                    "gpu": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]}
                },
                "flavors": {
                    "tiny": {"cpu": "250m", "memory": "512Mi"},
                    "big-gpu": {"cpu": {"request": 4, "limit": 8}, "memory": "1G", "gpus": 2, "pool": "gpu"},
                },
            },
            sort_keys=False,
        )
    )
    flavors = load_flavors(path)
    assert list(flavors) == ["tiny", "big-gpu"]
    assert flavors["tiny"].cpu == 0.25 and flavors["tiny"].memory_mib == 512
    assert flavors["big-gpu"].memory_mib == 954 and flavors["big-gpu"].node_selector == {"pool": "gpu"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"flavors": {"x": {"cpu": 1, "memory": "1Gi", "gpu": 1}}}, "flavors.x: unknown key(s) gpu"),
        ({"flavors": {"x": {"cpu": "one", "memory": "1Gi"}}}, "flavors.x.cpu.limit: 'one' is not a CPU quantity"),
        ({"flavors": {"x": {"cpu": 1, "memory": 1024}}}, "not a memory quantity with a unit"),
        ({"flavors": {"x": {"cpu": 1, "memory": "1Gi", "pool": "gpu"}}}, "flavors.x.pool: no pool 'gpu'"),
        ({"flavors": {"x": {"cpu": {"request": 4, "limit": 2}, "memory": "1Gi"}}}, "request is larger than its limit"),
        ({"flavors": {"x": {"cpu": 1, "memory": "1Gi", "gpus": -1}}}, "flavors.x.gpus"),
        ({"flavors": {}}, "no flavors defined"),
        ({"version": 2, "flavors": {"x": {"cpu": 1, "memory": "1Gi"}}}, "unsupported version"),
        ({"pools": {"p": {"nodeselector": {}}}, "flavors": {"x": {"cpu": 1, "memory": "1Gi"}}}, "pools.p: unknown key"),
    ],
)
def test_mistakes_are_reported_with_their_place(document: object, expected: str) -> None:
    with pytest.raises(FlavorsFileError) as err:
        parse_flavors(document)
    assert expected in str(err.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(FlavorsFileError, match="cannot read"):
        load_flavors(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("flavors: [unclosed")
    with pytest.raises(FlavorsFileError, match="not valid YAML"):
        load_flavors(bad)


def test_hardware_info_matches_the_hub_listing_shape() -> None:
    flavors = load_flavors()
    cpu = hardware_info(flavors["cpu-upgrade"])
    assert cpu == {
        "name": "cpu-upgrade",
        "prettyName": "CPU upgrade",
        "cpu": "8 vCPU",
        "ram": "32 GB",
        "unitCostUSD": 0.0005,
        "unitCostMicroUSD": 500,
        "unitLabel": "minute",
        "accelerator": None,
    }
    gpu = hardware_info(flavors["a10g-largex2"])
    assert gpu["accelerator"] == {"model": "A10G", "quantity": "2", "vram": "48 GB", "manufacturer": "Nvidia"}


def test_default_file_is_package_data_of_the_wheel(repo_root: Path) -> None:
    """hatch's wheel target ships every file of the package directory: check the built wheel when present."""
    assert DEFAULT_FLAVORS_FILE.is_file() and DEFAULT_FLAVORS_FILE.parent.name == "spaceyard_runtime"
    hatch = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["hatch"]
    wheel_config = hatch["build"]["targets"]["wheel"]
    assert "runtime/spaceyard_runtime" in wheel_config["packages"]
    assert not {"only-include", "exclude", "artifacts"} & set(wheel_config), "would change which data files ship"
    wheels = sorted((repo_root / "dist").glob("spaceyard-*.whl")) if (repo_root / "dist").is_dir() else []
    for wheel in wheels:
        assert "spaceyard_runtime/flavors.yaml" in zipfile.ZipFile(wheel).namelist()
