"""Synthetic hand-landmark signs generated from a seed, so sweeps can be tested and benchmarked without a dataset.

Classes come in families that share most of their motion and their handshape, pairs of classes differ only in
the direction of time, and signers differ in hand shape, size, orientation and movement amplitude and sign each
class in a style of their own, so a model needs temporal patterns and held-out signers are harder (like real ASL).

The default knobs are calibrated to the seeds' figures (bench/calibrate.py): under the built-in spaces' fixed
training blocks the seeds' setup lands near its documented Top-3, and only well-chosen configurations reach 80%
test Top-3 on signers the model never saw. This is a stand-in for WLASL landmarks, not real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trials.errors import DataError
from trials.splitting import signer_partition


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
    family_pose: float = 0.5  # std of a family's static finger curl (its handshape), radians: easy to see
    sample_motion: float = 0.2  # per-sample perturbation of the motion coefficients (how sloppily signed)
    time_warp: float = 0.3  # strength of the smooth monotone time warp (tempo changes within a sign)
    crop: float = 0.1  # up to this fraction of the sign is cut at each end (start/end detection error)
    frame_jitter: float = 0.3  # std of per-frame timing jitter, in frames
    landmark_noise: float = 0.05  # std of gaussian noise on every coordinate (tracker noise)
    signer_shape: float = 0.15  # std of the signer's per-landmark hand-shape offset
    signer_scale: float = 0.1  # std of the signer's log hand size
    signer_rotation: float = 0.4  # std of the signer's hand orientation, per axis
    signer_motion: float = 0.5  # std of the signer's log gain on each motion channel (big vs small signing)
    signer_style: float = 0.6  # each signer's own version of each sign: a motion deviation per (signer, class),
    # relative to the class motion's amplitude. New signers bring new versions, so fitting the training
    # signers' versions does not carry over: this is what regularisation across signers has to deal with.
    camera_shift: float = 0.5  # std of the per-sample position in the frame (undone by centring)
    camera_scale: float = 0.2  # std of the per-sample log distance to the camera (undone by scale normalisation)
    min_samples: int = 3  # smallest class under imbalance, like the rarest nslt_1000 glosses
    held_out_factor: int = 1  # val and test get this many times as many signers (k-1 new ones per held-out
    # signer, drawn like every other, signing as often): a steadier held-out measure, since which few signers
    # happen to be held out no longer decides which good configuration wins; the training data stays the same.


SYNTHETIC_KNOBS = SyntheticKnobs()
# Bump when make_synthetic's data changes for a config (2: calibrated to the seeds, 2026-12-01): a study records it,
# and refuses to train its next trials on other data than its first ones.
GENERATOR = "synthetic data, generator 2"

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
_STREAM_STYLE, _STREAM_POSE, _STREAM_HELD_OUT = 7, 9, 11


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
    traits = _signer_traits(signers * knobs.held_out_factor, noise, seed, knobs)  # one stream per signer id
    signer_order, train_signers = _signer_rotation(signers, seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    who: list[np.ndarray] = []
    for c, n in enumerate(counts):
        first = train_signers[c % len(train_signers)]
        signer = np.concatenate([[first], signer_order[(c + np.arange(n - 1)) % signers]])
        prototype, backwards = _class_prototype(c, seed, knobs)
        prototypes = prototype[None] + _signer_styles(c, signer, noise, seed, knobs)  # [n, channels, H, 2]
        pose = _family_pose(c // knobs.family_size, seed, knobs)
        rng = np.random.default_rng([seed, _STREAM_SAMPLES, c])
        xs.extend(_render_class(prototypes, prototype.std(), pose, backwards, signer, traits, noise, rng, knobs))
        held_out = held_out_companions(signer[~np.isin(signer, train_signers)], signers, knobs.held_out_factor)
        if len(held_out):  # none for factor 1, or a class too small to reach held-out signers
            prototypes = prototype[None] + _signer_styles(c, held_out, noise, seed, knobs)
            rng = np.random.default_rng([seed, _STREAM_HELD_OUT, c])  # its own stream: the samples above stay
            xs.extend(_render_class(prototypes, prototype.std(), pose, backwards, held_out, traits, noise, rng, knobs))
            signer = np.concatenate([signer, held_out])
        ys.append(np.full(len(signer), c, dtype=np.int64))
        who.append(signer.astype(np.int64))
    return xs, np.concatenate(ys), np.concatenate(who)


def held_out_companions(held_out: np.ndarray, signers: int, factor: int) -> np.ndarray:
    """The ``factor - 1`` new signers that join each held-out signer's split: ids ``s + k * signers``, k >= 1.

    The one place that numbers them, for the generator that renders them and the split that assigns them.
    """
    return (held_out[None, :] + signers * np.arange(1, factor)[:, None]).ravel()  # k-major; empty for factor 1


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
    return _amplitude(knobs) * (common + knobs.family_scale * family_motion + knobs.class_scale * deviation), backwards


def _amplitude(knobs: SyntheticKnobs) -> np.ndarray:
    """[channels, harmonics, 1] scale of the motion coefficients: low frequencies dominate, like real signing."""
    decay = 1.0 / np.arange(1, knobs.harmonics + 1)
    return CHANNEL_AMPLITUDE[:, None, None] * decay[None, :, None]


def _signer_styles(c: int, signer: np.ndarray, noise: float, seed: int, knobs: SyntheticKnobs) -> np.ndarray:
    """[n, channels, harmonics, 2] each sample's signer's own deviation from class ``c``'s motion."""
    shape = (MOTION_CHANNELS, knobs.harmonics, 2)
    styles = {int(s): np.random.default_rng([seed, _STREAM_STYLE, c, int(s)]).standard_normal(shape)
              for s in np.unique(signer)}
    scale = knobs.signer_style * noise * _amplitude(knobs)
    return np.stack([scale * styles[int(s)] for s in signer]) if len(signer) else np.zeros((0, *shape))


def _family_pose(family: int, seed: int, knobs: SyntheticKnobs) -> np.ndarray:
    """[5] static finger curl of a family's handshape (radians), added to the rest pose of all its members."""
    return knobs.family_pose * np.random.default_rng([seed, _STREAM_POSE, family]).standard_normal(5)


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
    prototypes: np.ndarray, motion_std: float, pose: np.ndarray, backwards: bool, signer: np.ndarray,
    traits: _SignerTraits, noise: float, rng: np.random.Generator, knobs: SyntheticKnobs,
) -> list[np.ndarray]:
    """All samples of one class, computed together on a padded [n, max_frames] time grid.

    ``prototypes`` are the per-sample motion coefficients (the class motion in each signer's style),
    ``motion_std`` the class motion's spread that sloppiness is relative to, ``pose`` the family's handshape.
    """
    n = len(signer)
    lengths = rng.integers(knobs.min_frames, knobs.max_frames + 1, n)
    u = _sample_times(lengths, noise, rng, knobs)  # [n, T] in [0, 1]
    if backwards:
        u = 1.0 - u
    coef = prototypes * traits.gain[signer][:, :, None, None]
    coef = coef + knobs.sample_motion * noise * motion_std * rng.standard_normal(coef.shape)
    harmonic = np.pi * np.arange(1, knobs.harmonics + 1)
    phase = u[..., None] * harmonic  # [n, T, H]
    basis = np.stack([np.sin(phase), np.cos(phase)], axis=-1)  # [n, T, H, 2]
    motion = basis.reshape(n, -1, 2 * knobs.harmonics) @ coef.reshape(n, MOTION_CHANNELS, -1).transpose(0, 2, 1)

    hand = hand_pose(REST_CURL + pose + motion[..., 6:11]) + traits.shape[signer][:, None]  # [n, T, 21, 3]
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
