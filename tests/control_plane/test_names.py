"""Every name derived from a Space id comes from spaceyard_platform.names; the builder's and runtime's fallbacks
(for requests and specs the platform did not make) agree with it, and stored names keep their old form."""

from __future__ import annotations

import pytest

from spaceyard_builder.api import BuildRequest
from spaceyard_builder.pipeline import source_folder
from spaceyard_platform import names
from spaceyard_platform.db.models import Build
from spaceyard_platform.settings import Settings
from spaceyard_runtime.api import AppSpec

IDS = ["alice/demo", "Owner/My_Space", "team-ml/demo.v2", "a/b_c", "x" * 96 + "/" + "Y" * 96]


@pytest.mark.parametrize("space_id", IDS)
def test_platform_names_are_the_stored_forms(space_id: str) -> None:
    owner, _, name = space_id.partition("/")
    assert names.space_folder(space_id) == f"{owner}--{name}"  # DATA_DIR/sources/OWNER--NAME on disk
    assert names.run_log_key(space_id, "b1", 1234) == f"run/{owner}--{name}/b1-1234"  # spaces.run_log_key
    assert names.build_log_key("b1") == "build/b1" == Build(id="b1").log_key
    assert names.runtime_slug(space_id) == space_id.replace("/", "-").replace("_", "-").lower()
    assert names.default_subdomain(space_id) == names.hub_label(owner, name)
    assert Settings(port=8000, host_style="subdomain").app_url(space_id).startswith(
        f"http://{names.hub_label(owner, name)}."
    )


@pytest.mark.parametrize("space_id", IDS)
def test_builder_and_runtime_fallbacks_agree_with_the_platform(space_id: str) -> None:
    spec = AppSpec(space_id=space_id, revision="r", sdk="gradio", artifact="a")
    assert spec.slug == names.runtime_slug(space_id)
    assert spec.source_folder == names.space_folder(space_id)
    request = BuildRequest(build_id="b", space_id=space_id, revision="r", repo="/r", log_key="build/b")
    assert source_folder(request) == names.space_folder(space_id)


def test_names_given_by_value_win() -> None:
    spec = AppSpec(space_id="a/b", revision="r", sdk="gradio", artifact="a", slug="given", source_folder="kept")
    assert (spec.slug, spec.source_folder) == ("given", "kept")
    request = BuildRequest(build_id="b", space_id="a/b", revision="r", repo="/r", log_key="k", source_folder="old")
    assert source_folder(request) == "old"
    assert "source_folder" in request.queue_message()
