"""Landmark sequences in, fixed-size train/val/test tensors out.

Three sources give the same result (:class:`Splits`): ``synthetic`` (:mod:`trials.synthetic`), and the ``npz``
and ``wlasl`` layouts (:mod:`trials.datasets`). Every sequence goes through :func:`preprocess` (centre,
normalise scale, resample to ``seq_len`` frames), the pipeline of the seed projects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from trials.config import TrainConfig
from trials.datasets import Labelled, check_splits, data_fingerprint, read_npz, read_wlasl
from trials.errors import DataError
from trials.splitting import SPLIT_NAMES, part_from_signers, signer_partition
from trials.synthetic import GENERATOR, SYNTHETIC_KNOBS, SyntheticKnobs, held_out_companions, make_synthetic

PREPROCESS_CHUNK = 1024  # npz samples preprocessed at a time
# Below this RMS spread, as a share of the coordinates' size, a sequence is a single point (its spread is rounding):
# leave it unscaled instead of blowing rounding up to unit size. Relative, so that data in any unit scales alike.
MIN_RELATIVE_SPREAD = 1e-8


@dataclass(frozen=True)
class Splits:
    """Preprocessed train/val/test tensors: ``x_*`` [N, seq_len, feature_dim] float32, ``y_*`` [N] int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    feature_dim: int
    description: str  # one line: source, counts per split, classes
    fingerprint: str = ""  # what a checkpoint records of the data it was trained on (a study's attr ``data`` too)

    def to(self, device: torch.device | str) -> Splits:
        """The same splits with every tensor on ``device`` (no copy when already there)."""
        return replace(self, **{name: getattr(self, name).to(device) for name in _tensor_fields()})

    def clone(self) -> Splits:
        """A copy whose tensors share no memory with this one (the synthetic cache hands out clones)."""
        return replace(self, **{name: getattr(self, name).clone() for name in _tensor_fields()})


def _tensor_fields() -> list[str]:
    return [f.name for f in fields(Splits) if f.name.startswith(("x_", "y_"))]


def load_splits(cfg: TrainConfig) -> Splits:
    """Load ``cfg.dataset_name`` with the ``dataset.*`` settings; CPU tensors, every split non-empty.

    ``dataset.classes`` is the number of classes for every source: real data whose labels do not run
    ``0..classes-1`` is a :class:`DataError` naming the file.
    """
    if cfg.dataset_name == "synthetic":
        knobs = replace(SYNTHETIC_KNOBS, signer_style=cfg.dataset_signer_style, family_pose=cfg.dataset_family_pose,
                        held_out_factor=cfg.dataset_held_out_factor)
        return synthetic_splits(
            cfg.dataset_classes, cfg.dataset_samples_per_class, cfg.dataset_signers, cfg.dataset_imbalance,
            cfg.dataset_noise, cfg.dataset_seed, cfg.dataset_seq_len, knobs,
        ).clone()
    if cfg.dataset_name == "npz":
        return load_npz(cfg.dataset_path, cfg.dataset_seq_len, classes=cfg.dataset_classes, seed=cfg.dataset_seed)
    if cfg.dataset_name == "wlasl":
        return load_wlasl(cfg.dataset_path, cfg.dataset_split_file, cfg.dataset_landmarks_dir, cfg.dataset_seq_len,
                          classes=cfg.dataset_classes)
    raise DataError(f"dataset.name={cfg.dataset_name!r}: unknown dataset; use synthetic, npz or wlasl")


# ================================================================================================
# Preprocessing
# ================================================================================================
def preprocess(seq: np.ndarray, seq_len: int) -> np.ndarray:
    """[T, L, D] landmarks -> [seq_len, L*D] float32: centred, scale-normalised, resampled in time.

    Centring removes where the signer stands in the frame and scaling removes how far from the camera, so the
    model sees the motion itself. Resampling gives every sequence the same length, which batching needs.
    The input must be finite (the loaders check that, naming the file).
    """
    seq = np.asarray(seq, dtype=np.float64)
    if seq.ndim != 3 or min(seq.shape) == 0:
        raise DataError(f"sequence: has shape {seq.shape} but must be [T, L, D] (3 non-empty dimensions)")
    return _preprocess_batch(seq[None], seq_len)[0]


def _preprocess_batch(batch: np.ndarray, seq_len: int) -> np.ndarray:
    """:func:`preprocess` for [N, T, L, D] sequences of one common length, vectorised over N."""
    batch = np.asarray(batch, dtype=np.float64)
    centre = batch.mean(axis=(1, 2), keepdims=True)  # mean landmark position over the sequence, per coordinate
    centred = batch - centre
    peak = np.abs(centred).max(axis=(1, 2, 3), keepdims=True)  # squared as a ratio to it: 1e200**2 would overflow
    unit = centred / np.where(peak > 0, peak, 1.0)
    rms = peak * np.sqrt(np.mean(np.sum(unit**2, axis=-1, keepdims=True), axis=(1, 2), keepdims=True))
    size = peak + np.abs(centre).max(axis=-1, keepdims=True)  # the largest coordinate, near enough
    scale = np.where(rms > MIN_RELATIVE_SPREAD * size, rms, 1.0)  # RMS distance from the centre
    resampled = resample(centred / scale, seq_len, axis=1)
    return resampled.reshape(batch.shape[0], seq_len, -1).astype(np.float32)


def resample(seq: np.ndarray, seq_len: int, axis: int = 0) -> np.ndarray:
    """Linear interpolation along ``axis`` to ``seq_len`` evenly spaced points, first and last frame kept."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    seq = np.moveaxis(np.asarray(seq), axis, 0)
    frames = seq.shape[0]
    position = np.linspace(0.0, frames - 1, seq_len)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, frames - 1)
    weight = (position - lower).reshape((-1,) + (1,) * (seq.ndim - 1))
    return np.moveaxis(seq[lower] * (1.0 - weight) + seq[upper] * weight, 0, axis)


# ================================================================================================
# Sources
# ================================================================================================
@functools.lru_cache(maxsize=8)
def synthetic_splits(
    classes: int, samples_per_class: int, signers: int, imbalance: float = 0.0, noise: float = 1.0, seed: int = 0,
    seq_len: int = 32, knobs: SyntheticKnobs = SYNTHETIC_KNOBS,
) -> Splits:
    """Synthetic data, split by signer (:func:`signer_partition`), preprocessed.

    Cached, one generation per parameter set per process, because a sweep worker runs many trials on the same
    data: the result is shared, so :meth:`Splits.clone` it before changing a tensor (``load_splits`` does).
    """
    xs, y, signer = make_synthetic(classes, samples_per_class, signers, imbalance, noise, seed, knobs)
    train, val, test = signer_partition(np.arange(signers), seed % 2**32)
    val, test = (np.concatenate([ids, held_out_companions(ids, signers, knobs.held_out_factor)]) for ids in (val, test))
    part = part_from_signers(signer, val, test)
    source = f"synthetic (seed {seed}, noise {noise:g}, imbalance {imbalance:g})"
    how = f"split by signer {len(train)}/{len(val)}/{len(test)}"
    return _finish(Labelled("synthetic", source, xs, y, part, classes, how), seq_len, GENERATOR)


def load_npz(path: str | Path, seq_len: int, *, classes: int | None = None, seed: int = 0) -> Splits:
    """An npz file (:func:`trials.datasets.read_npz`), split and preprocessed."""
    return _finish(read_npz(path, classes=classes, seed=seed), seq_len, data_fingerprint("npz", path))


def load_wlasl(
    root: str | Path, split_file: str = "nslt_100.json", landmarks_dir: str = "landmarks", seq_len: int = 32,
    *, classes: int | None = None,
) -> Splits:
    """A WLASL root (:func:`trials.datasets.read_wlasl`), split by subset and preprocessed."""
    return _finish(read_wlasl(root, split_file, landmarks_dir, classes=classes), seq_len,
                   data_fingerprint("wlasl", root, split_file, landmarks_dir))


# ================================================================================================
# Shared last step
# ================================================================================================
def _finish(data: Labelled, seq_len: int, fingerprint: str) -> Splits:
    """Check splits and class coverage, preprocess, and pack the tensors, with their source's ``fingerprint``."""
    check_splits(data)
    y, part, num_classes = data.y, data.part, data.num_classes
    sequences = data.sequences
    if isinstance(sequences, np.ndarray):  # chunks bound the float64 temporaries on a large npz
        x = np.concatenate([_preprocess_batch(sequences[i:i + PREPROCESS_CHUNK], seq_len)
                            for i in range(0, len(sequences), PREPROCESS_CHUNK)])
    else:
        x = np.stack([preprocess(seq, seq_len) for seq in sequences])
    tensors = {}
    for code, split in enumerate(SPLIT_NAMES):
        mask = part == code
        tensors[f"x_{split}"] = torch.from_numpy(np.ascontiguousarray(x[mask]))
        tensors[f"y_{split}"] = torch.from_numpy(y[mask].astype(np.int64))
    counts = "/".join(str(int((part == code).sum())) for code in range(3))
    description = (
        f"{data.source}: {num_classes} classes, train/val/test {counts} ({data.how}), "
        f"{seq_len} frames x {x.shape[2]} features"
    )
    return Splits(**tensors, num_classes=num_classes, feature_dim=int(x.shape[2]), description=description,
                  fingerprint=fingerprint)
