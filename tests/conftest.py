"""Shared fixtures (kept small)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def torch_globals():
    """Restore torch's global settings that ``run_config`` changes (threads, deterministic
    algorithms), so in-process runs don't leak them into later tests."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=warn_only)


@pytest.fixture
def write_toml(tmp_path):
    """``write_toml(text, name="config.toml") -> Path``: a TOML file in the test's tmp folder."""

    def write(text: str, name: str = "config.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
