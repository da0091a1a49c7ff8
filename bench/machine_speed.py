"""The machine's speed in one line, for CI logs: our CPU FBP time from `make bench` (bench_recon's row) and
the CI time budget it implies.

The budget is 40 minutes on the slower 2-core reference machine, where this FBP took 0.314 s; on a machine
where it takes t seconds, the budget is 40 min x t / 0.314 s.

    python bench/machine_speed.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recon import rows

REFERENCE_FBP_S = 0.314
REFERENCE_BUDGET_MIN = 40.0


def main() -> None:
    row = rows("cpu")[0]
    budget = REFERENCE_BUDGET_MIN * row["ours_s"] / REFERENCE_FBP_S
    print(f"machine speed: {row['name']}: {row['ours_s']:.3f} s (reference slower machine "
          f"{REFERENCE_FBP_S} s); CI budget here: {budget:.1f} min", flush=True)


if __name__ == "__main__":
    main()
