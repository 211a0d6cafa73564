"""One torch thread in these tests: tiny models gain nothing from more, and the 2 shared cores are contended."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
