"""Suite-wide settings.

Tests train tiny models whose matrix products are too small to gain from a second thread, and
lose a great deal to thread contention when the machine is busy; one thread also keeps results
bit-identical between the in-process and subprocess halves of the resume tests.

Evaluator networks are cached in a folder of this test session, never in the user's cache.
"""
import os
import socket
import tempfile

import pytest

import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the CLI subprocesses tests start
os.environ.setdefault("LVMGRAPH_CACHE", tempfile.mkdtemp(prefix="lvmgraph-test-cache-"))
torch.set_num_threads(1)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test: proves a code path never downloads."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
