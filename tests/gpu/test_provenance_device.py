"""The provenance record names the CUDA device a job computed on (skipped where there is no GPU)."""
import pytest
import torch

from dlmi import device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_picked_cuda_device_is_recorded_with_its_name():
    assert device.pick_device("auto").type == "cuda"
    index = torch.cuda.current_device()
    assert f"cuda:{index}" in device.devices_used()
    assert device.describe(f"cuda:{index}") == f"cuda:{index} ({torch.cuda.get_device_name(index)})"
