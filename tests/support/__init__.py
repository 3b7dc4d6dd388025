"""Test helpers shared across layers: local protocol servers."""
