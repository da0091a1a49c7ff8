"""Choice of the compute device, one place for every script."""
from __future__ import annotations

import torch

# Every device `pick_device` returned in this process, for the job's provenance record (dlmi_workflow.runlog.finish).
_PICKED: list[str] = []


def pick_device(preference: str = "auto") -> torch.device:
    """Return the torch device for a kernel.

    preference: "auto" (cuda when available, else cpu), "cpu" or "cuda". Asking for "cuda" on a machine
    without CUDA raises a RuntimeError naming the config key `device`.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config key 'device' must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu":
        return _picked(torch.device("cpu"))
    if torch.cuda.is_available():
        return _picked(torch.device("cuda"))
    if preference == "cuda":
        raise RuntimeError("config key 'device' is 'cuda' but torch sees no CUDA device on this machine")
    return _picked(torch.device("cpu"))


def _picked(device: torch.device) -> torch.device:
    name = f"cuda:{torch.cuda.current_device()}" if device.type == "cuda" else device.type
    if name not in _PICKED:
        _PICKED.append(name)
    return device


def devices_used() -> list[str]:
    """The devices `pick_device` chose in this process, in order (e.g. ["cuda:0"]); empty if never called."""
    return list(_PICKED)


def describe(device: str) -> str:
    """`device` with the GPU's name for CUDA devices (e.g. "cuda:0 (NVIDIA H100 80GB HBM3)")."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def set_threads(threads: int) -> None:
    """Limit torch's intra-op CPU threads to the cores Snakemake gave the job."""
    torch.set_num_threads(max(1, int(threads)))
