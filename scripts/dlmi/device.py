"""Choice of the compute device, one place for every script."""
from __future__ import annotations

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """Return the torch device for a kernel.

    preference: "auto" (cuda when available, else cpu), "cpu" or "cuda". Asking for "cuda" on a machine
    without CUDA raises a RuntimeError naming the config key `device`.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config key 'device' must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if preference == "cuda":
        raise RuntimeError("config key 'device' is 'cuda' but torch sees no CUDA device on this machine")
    return torch.device("cpu")


def set_threads(threads: int) -> None:
    """Limit torch's intra-op CPU threads to the cores Snakemake gave the job."""
    torch.set_num_threads(max(1, int(threads)))
