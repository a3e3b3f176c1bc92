"""Which samples train, validate and test: by signer when signers are known, else stratified by class.

Splitting by signer measures what matters in practice: how well the model reads someone it never saw.
"""

from __future__ import annotations

import math

import numpy as np

from trials.errors import DataError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")
SIGNER_FRACTIONS = (0.6, 0.2, 0.2)  # train/val/test share of signers when splitting by signer
STRATIFIED_FRACTIONS = (0.7, 0.15, 0.15)  # train/val/test share of each class without signer or split


def signer_partition(signer_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct signer ids -> (train, val, test) ids, about 60/20/20 and at least one each, shuffled by seed."""
    ids = np.unique(signer_ids)
    if len(ids) < 3:
        raise DataError(f"need at least 3 signers to split train/val/test by signer, found {len(ids)}")
    ids = ids[np.random.default_rng(seed % 2**32).permutation(len(ids))]  # numpy takes no negative seed
    n_val = max(1, _round(SIGNER_FRACTIONS[VAL] * len(ids)))
    n_test = max(1, _round(SIGNER_FRACTIONS[TEST] * len(ids)))
    n_train = len(ids) - n_val - n_test
    return ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]


def stratified_part(y: np.ndarray, seed: int) -> np.ndarray:
    """[N] labels -> [N] split codes (0 train, 1 val, 2 test): about 70/15/15 of every class, shuffled by seed."""
    rng = np.random.default_rng(seed % 2**32)
    part = np.full(len(y), TRAIN, dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_val = _round(STRATIFIED_FRACTIONS[VAL] * len(members))
        n_test = _round(STRATIFIED_FRACTIONS[TEST] * len(members))
        part[members[len(members) - n_val - n_test:len(members) - n_test]] = VAL
        part[members[len(members) - n_test:]] = TEST
    return part


def part_from_signers(signer: np.ndarray, val: np.ndarray, test: np.ndarray) -> np.ndarray:
    """[N] signer ids -> [N] split codes, given the val and test signer ids (every other signer trains)."""
    part = np.full(len(signer), TRAIN, dtype=np.int64)
    part[np.isin(signer, val)] = VAL
    part[np.isin(signer, test)] = TEST
    return part


def remedy(how: str, want: str, some: str = "some samples") -> str:
    """What gives the ``want`` split (train, val, test) the samples it lacks, for a split made ``how`` (the readers'
    words: by signer, stratified, by the 'split' array, by WLASL subset): another seed is no help for the last two."""
    if how.startswith("split by signer"):
        return "more signers, another dataset.seed, or a 'split' array"
    if how.startswith("stratified"):
        return "val and test take 15% of each class's samples, rounded (a class of 4 or more gives each one): more " \
            "samples, or a 'split' array"
    return f"mark {some} {want!r} in the 'split' array" if "'split'" in how else \
        f"give {some} subset {want!r} in the split file"


def _round(x: float) -> int:
    """Round half up (Python's round() rounds half to even, which makes 2.5 and 3.5 differ oddly)."""
    return math.floor(x + 0.5)
