"""Decoding: KV-cache generation, sampling, scoring and infilling (see flan_ul2r/api.py for the user API)."""
