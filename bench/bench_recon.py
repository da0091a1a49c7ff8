"""Benchmark: filtered back-projection, dlmi.recon.ct.fbp against scikit-image's iradon on the same sinogram.

`rows(device)` returns one row per comparison (timings: median of 3 after a warm-up; quality: mean absolute
error against the phantom inside the inscribed circle, where both reconstructions are defined).
Run alone with `python bench/bench_recon.py [cpu|cuda]`.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from dlmi.recon import ct

SIZE = 256
N_ANGLES = 360


def _median_time(run, sync) -> float:
    run()  # warm-up
    sync()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rows(device: str) -> list[dict]:
    """One row: FBP of a 256x256 Shepp-Logan sinogram (scikit-image `radon`, 360 angles over 180 deg)."""
    device = torch.device(device)
    phantom = resize(shepp_logan_phantom(), (SIZE, SIZE), anti_aliasing=True)
    degrees = np.linspace(0.0, 180.0, N_ANGLES, endpoint=False)
    sinogram = radon(phantom, degrees, circle=True)  # (n_det, A), the layout iradon takes
    rows_, cols_ = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    inscribed = rows_**2 + cols_**2 <= (SIZE // 2) ** 2

    ours_sinogram = torch.from_numpy(sinogram.T.copy()).to(device)  # (A, n_det), moved once
    angles = torch.from_numpy(np.deg2rad(degrees)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    result = {}

    def ours():
        result["ours"] = ct.fbp(ours_sinogram, angles, (SIZE, SIZE))

    def peer():
        result["peer"] = iradon(sinogram, degrees, filter_name="ramp", circle=True)

    ours_s = _median_time(ours, sync)
    peer_s = _median_time(peer, lambda: None)
    ours_image = result["ours"].cpu().numpy()
    return [{
        "name": f"fbp 2-D {SIZE}x{SIZE}, {N_ANGLES} angles (float64, {device.type})",
        "ours_s": ours_s,
        "peer": "skimage.iradon",
        "peer_s": peer_s,
        "ours_quality": float(np.abs(ours_image - phantom)[inscribed].mean()),
        "peer_quality": float(np.abs(result["peer"] - phantom)[inscribed].mean()),
        "quality_name": "MAE",
    }]


if __name__ == "__main__":
    for row in rows(sys.argv[1] if len(sys.argv) > 1 else "cpu"):
        print(row, f"speed-up {row['peer_s'] / row['ours_s']:.2f}x")
