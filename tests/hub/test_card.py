"""The card the API returns comes from the builder's front-matter parser: a README saved on Windows (a BOM,
CRLF line ends) gives the same card as any other, through the real huggingface_hub client."""

from __future__ import annotations

from huggingface_hub import HfApi

from tests.support import Server

README = b"\xef\xbb\xbf---\r\ntitle: Saved on Windows\r\nsdk: static\r\ncolorFrom: red\r\n---\r\n# Hello\r\n"


def test_bom_and_crlf_readme_card_parses(server: Server, admin_api: HfApi) -> None:
    repo_id = "admin/card-bom-crlf"
    admin_api.create_repo(repo_id, repo_type="space", space_sdk="static")
    admin_api.upload_file(path_or_fileobj=README, path_in_repo="README.md", repo_id=repo_id, repo_type="space")
    info = admin_api.space_info(repo_id)
    assert info.card_data is not None
    card = info.card_data
    assert card["title"] == "Saved on Windows" and card["sdk"] == "static" and card["colorFrom"] == "red"
    admin_api.delete_repo(repo_id, repo_type="space")
