"""Seeds for every random draw, derived from (study seed, subject, purpose).

A subject's draws depend only on the study seed, its own id and what is drawn, so adding a subject or a
rule changes no other subject's data.
"""
from __future__ import annotations

import hashlib

import numpy as np

# Every seed `derive_seed` gave in this process ("<subject>/<purpose>" -> seed), for the job's provenance record.
_DERIVED: dict[str, int] = {}


def derive_seed(study_seed: int, subject: str, purpose: str) -> int:
    """A 63-bit seed from the study seed, the subject id and the purpose (e.g. the rule name)."""
    digest = hashlib.sha256(f"{int(study_seed)}/{subject}/{purpose}".encode()).digest()
    seed = int.from_bytes(digest[:8], "little") >> 1
    _DERIVED[f"{subject}/{purpose}"] = seed
    return seed


def derived_seeds() -> dict[str, int]:
    """The seeds `derive_seed` gave in this process, keyed "<subject>/<purpose>"."""
    return dict(_DERIVED)


def rng(study_seed: int, subject: str, purpose: str) -> np.random.Generator:
    """A numpy Generator seeded by `derive_seed`."""
    return np.random.default_rng(derive_seed(study_seed, subject, purpose))
