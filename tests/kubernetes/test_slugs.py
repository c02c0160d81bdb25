"""Object names for arbitrary Space ids: valid DNS-1123 labels, no collisions, bounded, stable."""

from __future__ import annotations

import itertools

import pytest

from spaceyard_runtime.kubernetes import slugs

TRICKY = [
    "owner/name",
    "Owner/Name",
    "owner/Name",
    "owner/na_me",
    "owner/na-me",
    "owner/na.me",
    "owner--x/y",
    "owner/-x",
    "owner-/x",
    "a/b",
    "a-b/c",
    "a/b-c",
    "a/b/c",
    "日本/語",
    "😀/😀",
    "/",
    "",
    "x" * 300 + "/y",
    "x" * 300 + "/z",
    "owner/" + "n" * 80,
    "owner/" + "n" * 81,
    "0wner/9",
    "-/-",
    "--/--",
    "a/b.",
    "A/B",
]


@pytest.mark.parametrize("space_id", TRICKY)
def test_names_are_dns_labels(space_id: str) -> None:
    for name in (slugs.space_name(space_id), slugs.safe_slug(space_id), slugs.revision_name(space_id, "f" * 16)):
        assert slugs.is_dns_label(name), name
        assert len(name) <= 63


def test_no_collisions_and_stable() -> None:
    names = [slugs.space_name(s) for s in TRICKY]
    assert len(set(names)) == len(TRICKY)
    assert names == [slugs.space_name(s) for s in TRICKY]
    revisions = {slugs.revision_name(s, t) for s in TRICKY for t in ("0" * 16, "1" * 16)}
    assert len(revisions) == 2 * len(TRICKY)


def test_clean_ids_stay_readable_and_others_get_a_hash() -> None:
    assert slugs.space_name("alice/my-space") == "space-alice--my-space"
    hashed = slugs.space_name("Alice/My_Space")
    assert hashed.startswith("space-alice-my-space-") and len(hashed.rsplit("-", 1)[1]) == 8


def test_generated_ids_do_not_collide() -> None:
    alphabet = ["a", "A", "-", "_", ".", "/", "1"]
    ids = {"".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)}
    names = {slugs.space_name(i) for i in ids}
    assert len(names) == len(ids)
    assert all(slugs.is_dns_label(n) for n in names)


def test_max_length_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        slugs.safe_slug("a/b", 5)
