"""Tests against a real llama.cpp server (llama-cpp-python's) with a tiny model built on the spot."""
