"""`make bench`: our kernels against a trusted peer, side by side in one process on the same data.

Each bench/bench_*.py module defines rows(device) -> list of dicts with the keys name, ours_s, peer, peer_s,
ours_quality, peer_quality, quality_name. This prints one table (ratio = ours_s / peer_s, below 1 is
faster than the peer) and writes it to bench/results.tsv.
"""
import importlib
import pathlib
import platform
import sys

import pandas as pd
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"cpu {platform.processor() or platform.machine()} x{torch.get_num_threads()}"


def main(argv):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    only = argv[1:]  # optional module names, e.g. bench_recon
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        module = importlib.import_module(path.stem)
        for device in devices:
            for row in module.rows(device):
                row["ratio"] = row["ours_s"] / row["peer_s"]
                row["device"] = device_name(device)
                rows.append(row)
    columns = ["name", "ours_s", "peer", "peer_s", "ratio", "ours_quality", "peer_quality", "quality_name", "device"]
    table = pd.DataFrame(rows, columns=columns)
    shown = table.copy()
    for column in ("ours_quality", "peer_quality"):  # job counts as integers, errors to 4 digits
        shown[column] = [f"{v:.0f}" if float(v).is_integer() else f"{v:.4g}" for v in table[column]]
    with pd.option_context("display.width", 200, "display.max_colwidth", 48):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    table.to_csv(HERE / "results.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main(sys.argv)
