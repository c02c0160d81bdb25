"""Xet storage: the server side of Hugging Face's Xet protocol (tokens, CAS, reconstruction)."""
