"""The Hub-compatible REST API (what ``huggingface_hub`` with ``HF_ENDPOINT`` set talks to)."""
