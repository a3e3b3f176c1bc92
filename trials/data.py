"""Landmark sequences in, fixed-size train/val/test tensors out.

Three sources give the same result (:class:`Splits`):

* ``synthetic``: hand-landmark motion generated from a seed (:func:`make_synthetic`), so sweeps can be tested
  and benchmarked without a dataset. Classes come in families that share most of their motion, pairs of
  classes differ only in the direction of time, and signers differ in hand shape, size, orientation and
  movement amplitude, so a model needs temporal patterns and held-out signers are harder (like real ASL).
* ``npz``: one ``.npz`` with ``X`` [N, T, L, D], ``y`` [N] and optional ``signer`` [N] and ``split`` [N].
* ``wlasl``: a WLASL root with ``landmarks/<video_id>.npy`` ([T, L, D] each) and an ``nslt_*.json`` split file.

Every sequence goes through :func:`preprocess` (centre, normalise scale, resample to ``seq_len`` frames), the
pipeline of the seed projects. Bad data raises :class:`DataError` with one message naming the file and the
item, because a sweep worker that dies with a bare ``IndexError`` hours into a sweep tells nobody anything.
"""

from __future__ import annotations

import functools
import json
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from trials.config import TrainConfig

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")
SIGNER_FRACTIONS = (0.6, 0.2, 0.2)  # train/val/test share of signers when splitting by signer
STRATIFIED_FRACTIONS = (0.7, 0.15, 0.15)  # train/val/test share of each class without signer or split
PREPROCESS_CHUNK = 1024  # npz samples preprocessed at a time
MIN_SCALE = 1e-8  # below this RMS spread a sequence is a single point: leave it unscaled instead of dividing by 0


class DataError(ValueError):
    """A dataset problem, with one message naming the file (or ``synthetic``) and the offending item."""


# ================================================================================================
# Result
# ================================================================================================
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

    For real data ``num_classes`` comes from the data (npz: ``max(y) + 1``; WLASL: the number in the split
    file's name); ``dataset.classes`` is not enforced here, the caller decides what a mismatch means.
    """
    if cfg.dataset_name == "synthetic":
        return _synthetic_splits_cached(
            cfg.dataset_classes, cfg.dataset_samples_per_class, cfg.dataset_signers, cfg.dataset_imbalance,
            cfg.dataset_noise, cfg.dataset_seed, cfg.dataset_seq_len, SYNTHETIC_KNOBS,
        ).clone()
    if cfg.dataset_name == "npz":
        return load_npz(cfg.dataset_path, cfg.dataset_seq_len, seed=cfg.dataset_seed)
    if cfg.dataset_name == "wlasl":
        return load_wlasl(cfg.dataset_path, cfg.dataset_split_file, cfg.dataset_landmarks_dir, cfg.dataset_seq_len)
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
    rms = np.sqrt(np.mean(np.sum(centred**2, axis=-1), axis=(1, 2)))  # RMS distance from the centre
    scale = np.where(rms > MIN_SCALE, rms, 1.0)[:, None, None, None]
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
# Synthetic data
# ================================================================================================
@dataclass(frozen=True)
class SyntheticKnobs:
    """How hard the synthetic data is. Every per-sample and per-signer amplitude is multiplied by ``noise``.

    Units: hand size (wrist to middle knuckle = 1) for positions, radians for angles, relative amplitude of
    the class motion for the ``*_scale`` and ``sample_motion`` knobs.
    """

    min_frames: int = 32  # raw sequence length range, like 1-4 s of video
    max_frames: int = 128
    harmonics: int = 3  # low-frequency components per motion channel; more = faster, more intricate motion
    family_size: int = 5  # classes per family; a family shares the family motion
    family_scale: float = 1.0  # amplitude of the motion shared by a family (a shared motion of 1 is common to all)
    class_scale: float = 0.35  # amplitude of the class's own deviation: smaller = families more confusable
    reversed_pairs: bool = True  # odd members of a family replay the previous member backwards: order matters
    sample_motion: float = 0.4  # per-sample perturbation of the motion coefficients (how sloppily signed)
    time_warp: float = 0.3  # strength of the smooth monotone time warp (tempo changes within a sign)
    crop: float = 0.1  # up to this fraction of the sign is cut at each end (start/end detection error)
    frame_jitter: float = 0.3  # std of per-frame timing jitter, in frames
    landmark_noise: float = 0.05  # std of gaussian noise on every coordinate (tracker noise)
    signer_shape: float = 0.06  # std of the signer's per-landmark hand-shape offset
    signer_scale: float = 0.1  # std of the signer's log hand size
    signer_rotation: float = 0.2  # std of the signer's hand orientation, per axis
    signer_motion: float = 0.3  # std of the signer's log gain on each motion channel (big vs small signing)
    camera_shift: float = 0.5  # std of the per-sample position in the frame (undone by centring)
    camera_scale: float = 0.2  # std of the per-sample log distance to the camera (undone by scale normalisation)
    min_samples: int = 3  # smallest class under imbalance, like the rarest nslt_1000 glosses


SYNTHETIC_KNOBS = SyntheticKnobs()

# The rest hand in its own frame: wrist at the origin, fingers along +y, thumb towards -x, palm facing +z.
# Landmarks follow MediaPipe Hands: 0 wrist, then 4 per finger (thumb, index, middle, ring, pinky) from the
# knuckle (thumb: CMC) to the tip.
HAND_LANDMARKS = 21
FINGER_KNUCKLES = np.array(
    [[-0.30, 0.25, 0.0], [-0.22, 0.95, 0.0], [0.0, 1.0, 0.0], [0.20, 0.95, 0.0], [0.38, 0.82, 0.0]]
)
FINGER_ANGLES = np.radians([50.0, 8.0, 0.0, -8.0, -16.0])  # splay from +y towards -x
FINGER_SEGMENTS = np.array(
    [[0.35, 0.30, 0.25], [0.45, 0.28, 0.22], [0.50, 0.30, 0.24], [0.45, 0.28, 0.22], [0.35, 0.22, 0.20]]
)
FINGER_DIRECTIONS = np.stack([-np.sin(FINGER_ANGLES), np.cos(FINGER_ANGLES)], axis=-1)  # in the palm plane
REST_CURL = 0.25  # radians of flexion at each finger joint in the rest pose
# Motion channels: wrist translation x/y/z, hand rotation about x/y/z, curl of the 5 fingers.
CHANNEL_AMPLITUDE = np.array([0.5, 0.5, 0.3, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5])
MOTION_CHANNELS = len(CHANNEL_AMPLITUDE)

# Independent random streams, so that e.g. class 3 looks the same whatever the number of classes.
_STREAM_COMMON, _STREAM_FAMILY, _STREAM_CLASS, _STREAM_SIGNER, _STREAM_SAMPLES = range(5)


def make_synthetic(
    classes: int,
    samples_per_class: int,
    signers: int,
    imbalance: float = 0.0,
    noise: float = 1.0,
    seed: int = 0,
    knobs: SyntheticKnobs = SYNTHETIC_KNOBS,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Deterministic hand-landmark sign data: (X list of [T_i, 21, 3] float32, y [N] int64, signer [N] int64).

    Class ``c`` has ``max(min_samples, round(samples_per_class * (c+1)**-imbalance))`` samples (a long tail
    like nslt_1000 when ``imbalance > 0``). Each class's first sample comes from a training signer (see
    :func:`signer_partition`), so splitting by signer never leaves a class without training data.
    """
    if classes < 1 or samples_per_class < 1 or signers < 3:
        raise DataError(
            f"synthetic: need classes >= 1, samples_per_class >= 1 and signers >= 3, "
            f"got {classes}, {samples_per_class}, {signers}"
        )
    seed = seed % 2**32  # numpy seed sequences take non-negative integers only
    counts = class_counts(classes, samples_per_class, imbalance, knobs.min_samples)
    traits = _signer_traits(signers, noise, seed, knobs)
    signer_order, train_signers = _signer_rotation(signers, seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    who: list[np.ndarray] = []
    for c, n in enumerate(counts):
        first = train_signers[c % len(train_signers)]
        signer = np.concatenate([[first], signer_order[(c + np.arange(n - 1)) % signers]])
        prototype, backwards = _class_prototype(c, seed, knobs)
        rng = np.random.default_rng([seed, _STREAM_SAMPLES, c])
        xs.extend(_render_class(prototype, backwards, signer, traits, noise, rng, knobs))
        ys.append(np.full(n, c, dtype=np.int64))
        who.append(signer.astype(np.int64))
    return xs, np.concatenate(ys), np.concatenate(who)


def class_counts(classes: int, samples_per_class: int, imbalance: float, min_samples: int = 3) -> np.ndarray:
    """Samples per class: Zipf-like ``samples_per_class * (c+1)**-imbalance``, at least ``min_samples``."""
    raw = samples_per_class * np.arange(1, classes + 1, dtype=np.float64) ** -imbalance
    return np.maximum(np.floor(raw + 0.5).astype(np.int64), min(min_samples, samples_per_class))


def _class_prototype(c: int, seed: int, knobs: SyntheticKnobs) -> tuple[np.ndarray, bool]:
    """Motion coefficients [channels, harmonics, sin/cos] of class ``c``, and whether it plays backwards.

    prototype = shared motion + family motion + class deviation; the class deviation is what separates the
    members of a family, so ``class_scale / family_scale`` sets how confusable they are.
    """
    shape = (MOTION_CHANNELS, knobs.harmonics, 2)
    family, member = divmod(c, knobs.family_size)
    backwards = knobs.reversed_pairs and member % 2 == 1
    source = c - 1 if backwards else c  # a reversed class reuses its partner's motion
    common = np.random.default_rng([seed, _STREAM_COMMON]).standard_normal(shape)
    family_motion = np.random.default_rng([seed, _STREAM_FAMILY, family]).standard_normal(shape)
    deviation = np.random.default_rng([seed, _STREAM_CLASS, source]).standard_normal(shape)
    decay = 1.0 / np.arange(1, knobs.harmonics + 1)  # low frequencies dominate, like real signing
    amplitude = CHANNEL_AMPLITUDE[:, None, None] * decay[None, :, None]
    return amplitude * (common + knobs.family_scale * family_motion + knobs.class_scale * deviation), backwards


@dataclass(frozen=True)
class _SignerTraits:
    shape: np.ndarray  # [S, 21, 3] hand-shape offset
    scale: np.ndarray  # [S] hand size
    rotation: np.ndarray  # [S, 3, 3] hand orientation
    gain: np.ndarray  # [S, channels] how big each motion channel is signed


def _signer_traits(signers: int, noise: float, seed: int, knobs: SyntheticKnobs) -> _SignerTraits:
    """Per-signer hand shape, size, orientation and motion gain, each from the signer's own stream."""
    rngs = [np.random.default_rng([seed, _STREAM_SIGNER, s]) for s in range(signers)]
    draws = [(r.standard_normal((HAND_LANDMARKS, 3)), r.standard_normal(), r.standard_normal(3),
              r.standard_normal(MOTION_CHANNELS)) for r in rngs]
    shape, scale, angles, gain = (np.array(part) for part in zip(*draws, strict=True))
    return _SignerTraits(
        shape=knobs.signer_shape * noise * shape,
        scale=np.exp(knobs.signer_scale * noise * scale),
        rotation=rotation_matrix(knobs.signer_rotation * noise * angles),
        gain=np.exp(knobs.signer_motion * noise * gain),
    )


def _signer_rotation(signers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signers interleaved train, val, test, train, ... (so any 3 consecutive cover the splits), and train ones."""
    train, val, test = signer_partition(np.arange(signers), seed)
    groups = [list(train), list(val), list(test)]
    order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    return np.array(order, dtype=np.int64), train


def _render_class(
    prototype: np.ndarray, backwards: bool, signer: np.ndarray, traits: _SignerTraits, noise: float,
    rng: np.random.Generator, knobs: SyntheticKnobs,
) -> list[np.ndarray]:
    """All samples of one class, computed together on a padded [n, max_frames] time grid."""
    n = len(signer)
    lengths = rng.integers(knobs.min_frames, knobs.max_frames + 1, n)
    u = _sample_times(lengths, noise, rng, knobs)  # [n, T] in [0, 1]
    if backwards:
        u = 1.0 - u
    coef = prototype[None] * traits.gain[signer][:, :, None, None]
    coef = coef + knobs.sample_motion * noise * prototype.std() * rng.standard_normal(coef.shape)
    harmonic = np.pi * np.arange(1, knobs.harmonics + 1)
    phase = u[..., None] * harmonic  # [n, T, H]
    basis = np.stack([np.sin(phase), np.cos(phase)], axis=-1)  # [n, T, H, 2]
    motion = basis.reshape(n, -1, 2 * knobs.harmonics) @ coef.reshape(n, MOTION_CHANNELS, -1).transpose(0, 2, 1)

    hand = hand_pose(REST_CURL + motion[..., 6:11]) + traits.shape[signer][:, None]  # [n, T, 21, 3]
    # One linear map and one offset per frame: signer orientation, then the sign's rotation, scaled by hand
    # size and camera distance; then the wrist path, scaled by the camera, and the position in the frame.
    camera_scale = np.exp(knobs.camera_scale * noise * rng.standard_normal(n))
    camera_shift = knobs.camera_shift * noise * rng.standard_normal((n, 1, 3))
    linear = rotation_matrix(motion[..., 3:6]) @ traits.rotation[signer][:, None]  # [n, T, 3, 3]
    linear = linear * (traits.scale[signer] * camera_scale)[:, None, None, None]
    offset = motion[..., 0:3] * camera_scale[:, None, None] + camera_shift  # [n, T, 3]
    hand = _transform(linear, hand) + offset[:, :, None, :]
    hand = hand.astype(np.float32)
    hand += np.float32(knobs.landmark_noise * noise) * rng.standard_normal(hand.shape, dtype=np.float32)
    return [hand[i, :length].copy() for i, length in enumerate(lengths)]


def _transform(linear: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[..., 3, 3] maps applied to [..., L, 3] points; written out because batched 3x3 matmuls are slow."""
    return sum(points[..., j, None] * linear[..., None, :, j] for j in range(3))


def _sample_times(lengths: np.ndarray, noise: float, rng: np.random.Generator, knobs: SyntheticKnobs) -> np.ndarray:
    """Where in the sign (0 = start, 1 = end) each frame falls: jittered, warped, cropped, never backwards."""
    n, frames = len(lengths), int(lengths.max())
    span = (lengths - 1)[:, None].astype(np.float64)
    u = np.minimum(np.arange(frames)[None, :] / span, 1.0)
    u = u + knobs.frame_jitter * noise * rng.standard_normal((n, frames)) / span
    u = np.clip(np.maximum.accumulate(u, axis=1), 0.0, 1.0)  # jitter may not reverse time
    # u + a*sin(2*pi*u)/(2*pi) has derivative 1 + a*cos(2*pi*u) > 0 for |a| < 1: monotone, ends fixed.
    a = np.clip(knobs.time_warp * noise * rng.uniform(-1.0, 1.0, (n, 1)), -0.9, 0.9)
    u = u + a * np.sin(2.0 * np.pi * u) / (2.0 * np.pi)
    start = knobs.crop * noise * rng.uniform(0.0, 1.0, (n, 1))
    end = 1.0 - knobs.crop * noise * rng.uniform(0.0, 1.0, (n, 1))
    return start + (end - start) * u


def hand_pose(curl: np.ndarray) -> np.ndarray:
    """[..., 5] finger curl (radians per joint) -> [..., 21, 3] landmarks in the hand frame.

    Each finger bends towards the palm (-z) by ``curl`` at each of its three joints, cumulatively. Written per
    joint and coordinate because numpy is slow on many tiny trailing axes.
    """
    angles = curl[..., None] * np.arange(1, 4)  # [..., 5 fingers, 3 joints]
    along = FINGER_SEGMENTS * np.cos(angles)  # segment length along the finger's rest direction
    towards_palm = FINGER_SEGMENTS * np.sin(angles)
    pose = np.zeros((*curl.shape[:-1], HAND_LANDMARKS, 3))
    pose[..., 1::4, :] = FINGER_KNUCKLES
    for k in range(3):  # joint k+1 of every finger (landmarks 2+k, 6+k, ...) from joint k
        joint, previous = pose[..., 2 + k::4, :], pose[..., 1 + k::4, :]
        joint[..., 0] = previous[..., 0] + along[..., k] * FINGER_DIRECTIONS[:, 0]
        joint[..., 1] = previous[..., 1] + along[..., k] * FINGER_DIRECTIONS[:, 1]
        joint[..., 2] = previous[..., 2] - towards_palm[..., k]
    return pose


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """[..., 3] angles (about x, then y, then z) -> [..., 3, 3] rotation ``Rz @ Ry @ Rx``."""
    a, b, c = np.moveaxis(np.asarray(angles, dtype=np.float64), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rows = [
        [cb * cc, sa * sb * cc - ca * sc, ca * sb * cc + sa * sc],
        [cb * sc, sa * sb * sc + ca * cc, ca * sb * sc - sa * cc],
        [-sb, sa * cb, ca * cb],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def synthetic_splits(
    classes: int,
    samples_per_class: int,
    signers: int,
    imbalance: float = 0.0,
    noise: float = 1.0,
    seed: int = 0,
    seq_len: int = 32,
    knobs: SyntheticKnobs = SYNTHETIC_KNOBS,
) -> Splits:
    """Synthetic data, split by signer (:func:`signer_partition`), preprocessed."""
    xs, y, signer = make_synthetic(classes, samples_per_class, signers, imbalance, noise, seed, knobs)
    train, val, test = signer_partition(np.arange(signers), seed % 2**32)
    part = _part_from_signers(signer, train, val, test)
    source = f"synthetic (seed {seed}, noise {noise:g}, imbalance {imbalance:g})"
    how = f"split by signer {len(train)}/{len(val)}/{len(test)}"
    return _finish("synthetic", source, xs, y, part, classes, seq_len, how)


@functools.lru_cache(maxsize=8)
def _synthetic_splits_cached(
    classes: int, samples_per_class: int, signers: int, imbalance: float, noise: float, seed: int, seq_len: int,
    knobs: SyntheticKnobs,
) -> Splits:
    """One generation per parameter set per process: a sweep worker runs many trials on the same data."""
    return synthetic_splits(classes, samples_per_class, signers, imbalance, noise, seed, seq_len, knobs)


# ================================================================================================
# Splitting
# ================================================================================================
def signer_partition(signer_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct signer ids -> (train, val, test) ids, about 60/20/20 and at least one each, shuffled by seed.

    Splitting by signer measures what matters in practice: how well the model reads someone it never saw.
    """
    ids = np.unique(signer_ids)
    if len(ids) < 3:
        raise DataError(f"need at least 3 signers to split train/val/test by signer, found {len(ids)}")
    ids = ids[np.random.default_rng(seed).permutation(len(ids))]
    n_val = max(1, _round(SIGNER_FRACTIONS[VAL] * len(ids)))
    n_test = max(1, _round(SIGNER_FRACTIONS[TEST] * len(ids)))
    n_train = len(ids) - n_val - n_test
    return ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]


def stratified_part(y: np.ndarray, seed: int) -> np.ndarray:
    """[N] labels -> [N] split codes (0 train, 1 val, 2 test): about 70/15/15 of every class, shuffled by seed."""
    rng = np.random.default_rng(seed)
    part = np.full(len(y), TRAIN, dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_val = _round(STRATIFIED_FRACTIONS[VAL] * len(members))
        n_test = _round(STRATIFIED_FRACTIONS[TEST] * len(members))
        part[members[len(members) - n_val - n_test:len(members) - n_test]] = VAL
        part[members[len(members) - n_test:]] = TEST
    return part


def _part_from_signers(signer: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> np.ndarray:
    part = np.full(len(signer), TRAIN, dtype=np.int64)
    part[np.isin(signer, val)] = VAL
    part[np.isin(signer, test)] = TEST
    return part


def _round(x: float) -> int:
    """Round half up (Python's round() rounds half to even, which makes 2.5 and 3.5 differ oddly)."""
    return math.floor(x + 0.5)


# ================================================================================================
# npz
# ================================================================================================
def load_npz(path: str | Path, seq_len: int, *, classes: int | None = None, seed: int = 0) -> Splits:
    """``X`` [N, T, L, D], ``y`` [N], optional ``signer`` [N] and ``split`` [N] ('train'/'val'/'test' or 0/1/2).

    The split comes from ``split`` if present, else by signer, else stratified 70/15/15 by ``seed``. Labels must
    lie in ``[0, classes)``; without ``classes`` the number of classes is ``max(y) + 1``.
    """
    name = str(path)
    arrays = _read_npz(Path(path), name)
    x = _check_x(_need(arrays, "X", name), name)
    n = x.shape[0]
    y = _check_labels(_need(arrays, "y", name), name, n)
    num_classes = _check_label_range(y, name, classes)
    if "split" in arrays:
        part = _check_split(arrays["split"], name, n)
        how = "split by the 'split' array"
    elif "signer" in arrays:
        signer = _check_vector(arrays["signer"], "signer", name, n)
        train, val, test = _signer_partition_for(signer, seed, name)
        part = _part_from_signers(signer, train, val, test)
        how = f"split by signer {len(train)}/{len(val)}/{len(test)}"
    else:
        part = stratified_part(y, seed)
        how = f"stratified split (seed {seed})"
    return _finish(name, f"npz {name}", x, y, part, num_classes, seq_len, how)


def _read_npz(path: Path, name: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{name}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    if not zipfile.is_zipfile(path):  # np.load would try other formats, pickle included, and say something odd
        raise DataError(f"{name}: cannot be read as .npz (not a zip archive; write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{name}: holds object arrays; store numbers and fixed-width strings only") from exc
        raise DataError(f"{name}: cannot be read as .npz ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot be read as .npz ({exc})") from exc


def _need(arrays: dict[str, np.ndarray], key: str, name: str) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{name}: has no array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    return arrays[key]


def _check_x(x: np.ndarray, name: str) -> np.ndarray:
    """X must be a finite numeric [N, T, L, D] array with no empty dimension."""
    if x.ndim != 4:
        raise DataError(f"{name}: X has shape {x.shape} but must be [N, T, L, D] (4 dimensions)")
    if min(x.shape) == 0:
        raise DataError(f"{name}: X has shape {x.shape}; no dimension of [N, T, L, D] may be empty")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{name}: X has dtype {x.dtype} but must be numeric landmark coordinates")
    bad = ~np.isfinite(x)
    if bad.any():
        i, t, landmark, coord = np.argwhere(bad)[0]
        raise DataError(
            f"{name}: X[{i}] contains {_kind_of(x[i, t, landmark, coord])} at frame {t} "
            f"(landmark {landmark}, coordinate {coord})"
        )
    return x


def _check_vector(values: np.ndarray, key: str, name: str, n: int) -> np.ndarray:
    """A per-sample array: one dimension, one entry per sample of X."""
    if values.ndim != 1:
        raise DataError(f"{name}: {key} has shape {values.shape} but must be [N] (1 dimension)")
    if len(values) != n:
        raise DataError(f"{name}: {key} has {len(values)} entries but X has {n} samples")
    return values


def _check_labels(y: np.ndarray, name: str, n: int) -> np.ndarray:
    """Labels must be whole numbers (integer dtype, or floats with integral values)."""
    y = _check_vector(y, "y", name, n)
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if len(bad):
            raise DataError(f"{name}: y[{bad[0]}]={y[bad[0]]} is not an integer class id")
        return y.astype(np.int64)
    raise DataError(f"{name}: y has dtype {y.dtype} but must hold integer class ids")


def _check_label_range(y: np.ndarray, name: str, classes: int | None, what: str = "y") -> int:
    """Every label in ``[0, classes)``; returns the number of classes (``max + 1`` when not given)."""
    num_classes = classes if classes is not None else int(y.max()) + 1
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise DataError(f"{name}: {what}[{bad[0]}]={y[bad[0]]} is out of range [0, {num_classes})")
    return num_classes


def _check_split(split: np.ndarray, name: str, n: int) -> np.ndarray:
    """'train'/'val'/'test' strings (or bytes) or 0/1/2 integers -> split codes."""
    split = _check_vector(split, "split", name, n)
    if split.dtype.kind in "US":
        text = split.astype(str)
        allowed = np.isin(text, SPLIT_NAMES)
        codes = np.select([text == s for s in SPLIT_NAMES], [TRAIN, VAL, TEST], default=-1)
    elif split.dtype.kind in "iu":
        allowed = np.isin(split, (TRAIN, VAL, TEST))
        codes = split.astype(np.int64)
    else:
        raise DataError(f"{name}: split has dtype {split.dtype} but must hold 'train'/'val'/'test' or 0/1/2")
    bad = np.flatnonzero(~allowed)
    if len(bad):
        raise DataError(f"{name}: split[{bad[0]}]={split[bad[0]].item()!r} is not one of 'train', 'val', 'test' "
                        "(or 0, 1, 2)")
    return codes


def _signer_partition_for(signer: np.ndarray, seed: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return signer_partition(signer, seed)
    except DataError as exc:
        raise DataError(f"{name}: signer: {exc}") from None


def _kind_of(value: float) -> str:
    return "NaN" if math.isnan(value) else "inf"


# ================================================================================================
# WLASL
# ================================================================================================
def load_wlasl(
    root: str | Path, split_file: str = "nslt_100.json", landmarks_dir: str = "landmarks", seq_len: int = 32,
    *, classes: int | None = None,
) -> Splits:
    """A WLASL root: ``<split_file>`` maps video id -> {"subset", "action": [class, start, end]}.

    Frames are 1-based and inclusive; ``end = -1`` means to the last frame. Class ids are kept as they are and
    must be below ``classes``, or else below the number in the file name (nslt_100 -> 100), or else the number
    of classes is ``max + 1``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: WLASL root folder not found")
    json_path = root / split_file
    json_name = str(json_path)
    entries = _read_split_json(json_path, json_name)
    implied = _classes_from_name(split_file)
    bound = classes if classes is not None else implied
    landmarks = root / landmarks_dir
    if not landmarks.is_dir():
        raise DataError(f"{landmarks}: landmarks folder not found (dataset.landmarks_dir={landmarks_dir!r})")

    sequences: list[np.ndarray] = []
    labels: list[int] = []
    parts: list[int] = []
    shape: tuple[str, tuple[int, int]] | None = None
    for video, entry in entries.items():
        subset, label, start, end = _check_entry(video, entry, json_name)
        if bound is not None and label >= bound:
            origin = f"classes={classes}" if classes is not None else "the file name"
            raise DataError(
                f"{json_name}: video {video!r} has class {label} but {origin} means {bound} classes (0..{bound - 1})"
            )
        npy_name = str(landmarks / f"{video}.npy")
        seq = _read_sequence(landmarks / f"{video}.npy", npy_name, video, json_name)
        if shape is None:
            shape = (npy_name, seq.shape[1:])
        elif seq.shape[1:] != shape[1]:
            raise DataError(
                f"{npy_name}: has {seq.shape[1]} landmarks x {seq.shape[2]} coordinates but {shape[0]} has "
                f"{shape[1][0]} x {shape[1][1]}; all videos must match"
            )
        sequences.append(_cut_frames(seq, start, end, npy_name, video, json_name))
        labels.append(label)
        parts.append(SPLIT_NAMES.index(subset))
    y = np.array(labels, dtype=np.int64)
    num_classes = bound if bound is not None else int(y.max()) + 1
    return _finish(json_name, f"wlasl {json_name}", sequences, y, np.array(parts), num_classes, seq_len,
                   "split by subset")


def _read_split_json(path: Path, name: str) -> dict[str, object]:
    if not path.is_file():
        raise DataError(f"{name}: split file not found (dataset.split_file)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot be read ({exc})") from None
    if not isinstance(entries, dict):
        raise DataError(f"{name}: must be a JSON object mapping video id -> entry, not {type(entries).__name__}")
    if not entries:
        raise DataError(f"{name}: lists no videos")
    return entries


def _classes_from_name(split_file: str) -> int | None:
    """nslt_100.json -> 100; a name without a number implies nothing."""
    numbers = re.findall(r"\d+", Path(split_file).stem)
    return int(numbers[-1]) if numbers else None


def _check_entry(video: str, entry: object, name: str) -> tuple[str, int, int, int]:
    """One split-file entry -> (subset, class, start frame, end frame), every field checked."""
    if not isinstance(entry, dict):
        raise DataError(f"{name}: video {video!r}: entry must be an object with 'subset' and 'action'")
    subset = entry.get("subset")
    if subset not in SPLIT_NAMES:
        raise DataError(f"{name}: video {video!r} has subset {subset!r}; must be 'train', 'val' or 'test'")
    action = entry.get("action")
    if (not isinstance(action, list) or len(action) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in action)):
        raise DataError(f"{name}: video {video!r} has action {action!r}; must be [class, start_frame, end_frame] "
                        "integers")
    label, start, end = action
    if label < 0:
        raise DataError(f"{name}: video {video!r} has class {label}; class ids must be >= 0")
    return subset, label, start, end


def _read_sequence(path: Path, name: str, video: str, json_name: str) -> np.ndarray:
    """One video's [T, L, D] landmarks, finite and non-empty."""
    if not path.is_file():
        raise DataError(f"{name}: file not found (video {video!r} listed in {json_name})")
    try:
        seq = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot be read as .npy ({exc})") from None
    if seq.ndim != 3:
        raise DataError(f"{name}: has shape {seq.shape} but must be [T, L, D] (3 dimensions)")
    if min(seq.shape) == 0:
        raise DataError(f"{name}: has shape {seq.shape}; no dimension of [T, L, D] may be empty")
    if seq.dtype.kind not in "fiu":
        raise DataError(f"{name}: has dtype {seq.dtype} but must be numeric landmark coordinates")
    bad = ~np.isfinite(seq)
    if bad.any():
        t, landmark, coord = np.argwhere(bad)[0]
        raise DataError(f"{name}: contains {_kind_of(seq[t, landmark, coord])} at frame {t} "
                        f"(landmark {landmark}, coordinate {coord})")
    return seq


def _cut_frames(seq: np.ndarray, start: int, end: int, name: str, video: str, json_name: str) -> np.ndarray:
    """WLASL frames ``start..end`` (1-based, inclusive; end -1 = last frame) of a [T, L, D] sequence."""
    frames = seq.shape[0]
    last = frames if end == -1 else end
    if not 1 <= start <= last <= frames:
        raise DataError(
            f"{json_name}: video {video!r} has frames {start}..{end} but {name} has {frames} frames "
            "(frames are 1-based, inclusive, end -1 = last)"
        )
    return seq[start - 1:last]


# ================================================================================================
# Shared last step
# ================================================================================================
def _finish(
    name: str, source: str, sequences: np.ndarray | Sequence[np.ndarray], y: np.ndarray, part: np.ndarray,
    num_classes: int, seq_len: int, how: str,
) -> Splits:
    """Check splits and class coverage, preprocess, and pack the tensors."""
    for code, split in enumerate(SPLIT_NAMES):
        if not (part == code).any():
            raise DataError(f"{name}: the {split} split is empty ({how})")
    train_counts = np.bincount(y[part == TRAIN], minlength=num_classes)
    missing = np.flatnonzero(train_counts == 0)
    if len(missing):
        others = f" (nor do {len(missing) - 1} other classes)" if len(missing) > 1 else ""
        raise DataError(f"{name}: class {missing[0]} has no training samples{others}")
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
        f"{source}: {num_classes} classes, train/val/test {counts} ({how}), {seq_len} frames x {x.shape[2]} features"
    )
    return Splits(**tensors, num_classes=num_classes, feature_dim=int(x.shape[2]), description=description)
