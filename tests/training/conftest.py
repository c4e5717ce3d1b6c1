"""The training stack's tests (torch, the `train` extra): every test here is marked `train`.

When torch is not installed the root conftest does not collect this folder; `pytest -m "not train"` leaves
it out on purpose.
"""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # tiny models: a second OpenMP thread only spins against the other core


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.train)
