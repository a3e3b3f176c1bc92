"""trials.data, .synthetic, .datasets: generation, preprocessing, splits, the npz and WLASL layouts, every DataError.

Real files are written to tmp_path; each error test checks that the message names the file and the item.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from trials import data, splitting, synthetic
from trials.config import TrainConfig
from trials.errors import DataError


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def landmarks(rng: np.random.Generator, frames: int = 10, points: int = 21, coords: int = 3) -> np.ndarray:
    return rng.standard_normal((frames, points, coords)).astype(np.float32)


def write_npz(path: Path, *, n_classes: int = 3, per_class: int = 6, **override: object) -> Path:
    """A valid small npz (X [N, 8, 5, 2], y balanced) with any array replaced or added through ``override``."""
    rng = np.random.default_rng(0)
    n = n_classes * per_class
    arrays: dict[str, object] = {
        "X": rng.standard_normal((n, 8, 5, 2)).astype(np.float32),
        "y": np.repeat(np.arange(n_classes), per_class),
    }
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_wlasl(root: Path, entries: dict[str, object], videos: dict[str, np.ndarray],
                split_file: str = "nslt_100.json") -> Path:
    (root / "landmarks").mkdir(parents=True, exist_ok=True)
    (root / split_file).write_text(json.dumps(entries))
    for video, seq in videos.items():
        np.save(root / "landmarks" / f"{video}.npy", seq)
    return root


def small_wlasl(root: Path, split_file: str = "nslt_3.json") -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """3 classes x (train, train, val, test), 12 frames each; returns the entries and the videos written."""
    rng = np.random.default_rng(1)
    entries: dict[str, dict] = {}
    videos: dict[str, np.ndarray] = {}
    for c in range(3):
        for k, subset in enumerate(["train", "train", "val", "test"]):
            video = f"v{c}{k}"
            entries[video] = {"subset": subset, "action": [c, 1, -1]}
            videos[video] = landmarks(rng, frames=12, points=4, coords=2)
    write_wlasl(root, entries, videos, split_file)
    return entries, videos


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# preprocessing
# ------------------------------------------------------------------------------------------------
def test_preprocess_centres_scales_and_resamples_by_hand() -> None:
    # Two frames, two landmarks, one coordinate: values 0, 2 then 4, 6. Mean 3; centred -3, -1, 1, 3;
    # RMS distance sqrt((9 + 1 + 1 + 9) / 4) = sqrt(5). Three output frames: first, midpoint, last.
    seq = np.array([[[0.0], [2.0]], [[4.0], [6.0]]])
    out = data.preprocess(seq, 3)
    expected = np.array([[-3.0, -1.0], [-1.0, 1.0], [1.0, 3.0]]) / math.sqrt(5)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_preprocess_centres_per_coordinate_and_scales_by_euclidean_distance() -> None:
    # One frame, points (0, 0) and (2, 4): centre (1, 2), both at distance sqrt(5) from it.
    seq = np.array([[[0.0, 0.0], [2.0, 4.0]]])
    out = data.preprocess(seq, 4)
    row = np.array([-1.0, -2.0, 1.0, 2.0]) / math.sqrt(5)
    np.testing.assert_allclose(out, np.tile(row, (4, 1)), rtol=1e-6)


def test_resample_interpolates_linearly_between_frames() -> None:
    seq = np.array([0.0, 10.0, 40.0])
    np.testing.assert_allclose(data.resample(seq, 5), [0.0, 5.0, 10.0, 25.0, 40.0])


def test_preprocess_guards_a_zero_spread_sequence() -> None:
    out = data.preprocess(np.full((5, 3, 2), 7.0), 4)
    assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_preprocess_keeps_the_shape_of_huge_coordinates() -> None:
    # Squaring 1e200 overflows float64: the spread must be measured without squaring the raw values.
    seq = np.random.default_rng(0).standard_normal((6, 4, 3))
    np.testing.assert_allclose(data.preprocess(seq * 1e200, 5), data.preprocess(seq, 5), rtol=1e-5, atol=1e-6)
    assert np.abs(data.preprocess(seq * 1e200, 5)).max() > 0.5


def test_preprocess_scales_tiny_coordinates_as_any_other_unit() -> None:
    """A spread below 1e-8 (metres written as 1e-9 units) was taken for a single point and left unscaled, near 0."""
    seq = np.random.default_rng(0).standard_normal((6, 4, 3))
    for factor in (1e-9, 1e-30):
        np.testing.assert_allclose(data.preprocess(seq * factor, 5), data.preprocess(seq, 5), rtol=1e-5, atol=1e-6)
    rounding = np.full((5, 3, 2), 1000.0) + 1e-13 * np.random.default_rng(1).standard_normal((5, 3, 2))
    assert np.abs(data.preprocess(rounding, 4)).max() < 1e-9  # a point whose spread is rounding stays a point


def test_preprocess_rejects_a_sequence_with_the_wrong_dimensions() -> None:
    assert "(10, 63)" in error_of(data.preprocess, np.zeros((10, 63)), 8)


# ------------------------------------------------------------------------------------------------
# synthetic
# ------------------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_from_the_seed() -> None:
    x1, y1, s1 = synthetic.make_synthetic(5, 6, 4, seed=3)
    x2, y2, s2 = synthetic.make_synthetic(5, 6, 4, seed=3)
    x3, _, _ = synthetic.make_synthetic(5, 6, 4, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(x1, x2, strict=True))
    assert np.array_equal(y1, y2) and np.array_equal(s1, s2)
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(x1, x3, strict=True))


def test_synthetic_class_does_not_depend_on_the_number_of_classes() -> None:
    few, _, _ = synthetic.make_synthetic(3, 4, 5, seed=1)
    many, _, _ = synthetic.make_synthetic(8, 4, 5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(few, many[: len(few)], strict=True))


def test_synthetic_shapes_and_types() -> None:
    xs, y, signer = synthetic.make_synthetic(4, 7, 5, seed=0)
    assert len(xs) == len(y) == len(signer) == 28
    assert y.dtype == np.int64 and signer.dtype == np.int64
    assert np.array_equal(np.bincount(y), [7, 7, 7, 7])
    for x in xs:
        assert x.dtype == np.float32 and x.shape[1:] == (21, 3) and 32 <= x.shape[0] <= 128
        assert np.all(np.isfinite(x))


def test_synthetic_noise_zero_leaves_only_the_class() -> None:
    xs, _, _ = synthetic.make_synthetic(2, 4, 3, noise=0.0, seed=0)
    seqs = [data.preprocess(x, 32) for x in xs]
    within = max(np.abs(seqs[i] - seqs[0]).max() for i in range(1, 4))
    between = np.abs(seqs[4] - seqs[0]).max()
    assert within < 0.05 < 1.0 < between  # same class: equal up to resampling; other class: different


def test_synthetic_reversed_pair_is_the_same_motion_backwards() -> None:
    xs, _, _ = synthetic.make_synthetic(2, 1, 3, noise=0.0, seed=0)
    forward, backward = (data.preprocess(x, 40) for x in xs)
    assert np.abs(forward[::-1] - backward).max() < 0.05
    assert np.abs(forward - backward).max() > 0.5


def test_imbalance_gives_a_long_tail_with_a_floor_of_three() -> None:
    _, y, _ = synthetic.make_synthetic(20, 24, 10, imbalance=1.0, seed=0)
    counts = np.bincount(y)
    assert counts[0] == 24 and counts[1] == 12 and counts[2] == 8
    assert np.all(np.diff(counts) <= 0) and counts.min() == 3
    assert np.array_equal(synthetic.class_counts(3, 24, 0.0), [24, 24, 24])


def test_synthetic_signer_split_is_disjoint_and_60_20_20() -> None:
    _, _, signer = synthetic.make_synthetic(10, 24, 10, seed=5)
    train, val, test = splitting.signer_partition(np.arange(10), 5)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    assert set(train) | set(val) | set(test) == set(range(10))
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert set(signer) == set(range(10))


def test_signer_partition_keeps_one_signer_per_split() -> None:
    assert [len(p) for p in splitting.signer_partition(np.array(["a", "b", "c"]), 0)] == [1, 1, 1]


def test_every_synthetic_class_has_a_training_signer_even_in_the_tail() -> None:
    splits = data.synthetic_splits(30, 12, 10, imbalance=2.0, seed=2, seq_len=8)
    assert set(splits.y_train.tolist()) == set(range(30))


def test_load_splits_synthetic_shapes_cache_and_device() -> None:
    cfg = TrainConfig(dataset_classes=6, dataset_samples_per_class=9, dataset_signers=5, dataset_seq_len=16)
    splits = data.load_splits(cfg)
    assert splits.num_classes == 6 and splits.feature_dim == 63
    for x, y in [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (16, 63) and len(x) == len(y) > 0
    assert "synthetic" in splits.description and "6 classes" in splits.description
    again = data.load_splits(cfg)
    assert torch.equal(again.x_train, splits.x_train) and again.x_train is not splits.x_train
    splits.x_train.zero_()  # a trial that modifies its tensors must not spoil the cache
    assert not torch.equal(data.load_splits(cfg).x_train, splits.x_train)
    moved = splits.to("cpu")
    assert moved.x_val.device.type == "cpu" and moved.num_classes == 6


def test_signer_style_and_family_pose_default_to_the_generators_knobs_and_change_the_data() -> None:
    """A space tunes its data's difficulty with these two keys; left out, the data is the generator's default."""
    defaults = TrainConfig()
    assert defaults.dataset_signer_style == synthetic.SYNTHETIC_KNOBS.signer_style
    assert defaults.dataset_family_pose == synthetic.SYNTHETIC_KNOBS.family_pose
    small = {"dataset_classes": 6, "dataset_samples_per_class": 6, "dataset_signers": 5, "dataset_seq_len": 8}
    plain = data.load_splits(TrainConfig(**small)).x_train
    assert torch.equal(plain, data.synthetic_splits(6, 6, 5, seq_len=8).x_train)
    for knob in ({"dataset_signer_style": 1.2}, {"dataset_family_pose": 0.9}):
        assert not torch.equal(data.load_splits(TrainConfig(**small, **knob)).x_train, plain)
    with pytest.raises(ValueError, match=r"dataset\.signer_style"):
        TrainConfig.from_flat({"dataset.signer_style": -0.1})


def test_held_out_factor_multiplies_the_val_and_test_signers_and_leaves_training_and_the_first_samples_alone() -> None:
    """A steadier held-out measure for benchmarks: more val/test signers, the same training data."""
    small = {"dataset_classes": 6, "dataset_samples_per_class": 10, "dataset_signers": 5, "dataset_seq_len": 8}
    plain, steady = (data.load_splits(TrainConfig(**small, dataset_held_out_factor=k)) for k in (1, 3))
    assert torch.equal(steady.x_train, plain.x_train) and torch.equal(steady.y_train, plain.y_train)
    assert "split by signer 3/1/1" in plain.description and "split by signer 3/3/3" in steady.description
    for split in ("val", "test"):
        x, y = getattr(plain, f"x_{split}"), getattr(plain, f"y_{split}")
        assert len(getattr(steady, f"y_{split}")) == 3 * len(y)
        same = [getattr(steady, f"x_{split}")[getattr(steady, f"y_{split}") == c][:int((y == c).sum())]
                for c in range(6)]
        assert torch.equal(torch.cat(same), torch.cat([x[y == c] for c in range(6)]))  # the originals come first
        assert torch.bincount(getattr(steady, f"y_{split}")).tolist() == (3 * torch.bincount(y)).tolist()
    with pytest.raises(ValueError, match=r"dataset\.held_out_factor"):
        TrainConfig.from_flat({"dataset.held_out_factor": 0})


def test_held_out_factor_with_classes_that_reach_no_held_out_signer() -> None:
    """A long tail's smallest classes (3 samples) are all in training signers' hands: nothing to multiply."""
    splits = data.load_splits(TrainConfig(dataset_classes=8, dataset_samples_per_class=6, dataset_imbalance=2.0,
                                          dataset_held_out_factor=3, dataset_seq_len=8))
    assert splits.num_classes == 8 and len(splits.y_val) and len(splits.y_test)


def test_a_negative_data_seed_splits_as_for_synthetic_data(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", n_classes=3, per_class=20)
    assert torch.equal(data.load_npz(path, 6, seed=-1).y_val, data.load_npz(path, 6, seed=2**32 - 1).y_val)
    signer = np.tile(np.array(["ann", "bob", "cy", "dee", "eve"]), 6)
    assert len(data.load_npz(write_npz(tmp_path / "s.npz", per_class=10, signer=signer), 8, seed=-7).y_train) == 18


def test_sequence_length_is_bounded_before_attention_runs_out_of_memory() -> None:
    """At 4096 frames the OOM killer ended a 20-sample training without a word (attention's memory is quadratic)."""
    assert TrainConfig.from_flat({"dataset.seq_len": 512}).dataset_seq_len == 512
    with pytest.raises(ValueError, match=r"dataset\.seq_len.*an integer from 4 to 512"):
        TrainConfig.from_flat({"dataset.seq_len": 4096})


def test_make_synthetic_rejects_too_few_signers() -> None:
    assert "signers >= 3" in error_of(synthetic.make_synthetic, 3, 4, 2)


# ------------------------------------------------------------------------------------------------
# npz
# ------------------------------------------------------------------------------------------------
def test_npz_without_signer_or_split_is_stratified(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", n_classes=3, per_class=20)
    splits = data.load_npz(path, 6, seed=1)
    assert splits.num_classes == 3 and splits.feature_dim == 10
    assert splits.x_train.shape[1:] == (6, 10)
    for y, per_class in [(splits.y_train, 14), (splits.y_val, 3), (splits.y_test, 3)]:
        assert torch.bincount(y, minlength=3).tolist() == [per_class] * 3
    same = data.load_npz(path, 6, seed=1)
    assert torch.equal(same.x_val, splits.x_val)


def test_npz_with_signer_splits_by_signer(tmp_path: Path) -> None:
    signer = np.tile(np.array(["ann", "bob", "cy", "dee", "eve"]), 6)  # 30 samples
    path = write_npz(tmp_path / "data.npz", n_classes=3, per_class=10, signer=signer)
    splits = data.load_npz(path, 8)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (18, 6, 6)
    assert "split by signer 3/1/1" in splits.description


def test_npz_split_array_wins_over_signer(tmp_path: Path) -> None:
    split = np.array(["train"] * 4 + ["val", "test"])
    path = write_npz(tmp_path / "data.npz", n_classes=2, per_class=3, y=np.array([0, 1, 0, 1, 0, 1]),
                     split=split, signer=np.zeros(6, dtype=int))
    splits = data.load_npz(path, 8)
    assert splits.y_train.tolist() == [0, 1, 0, 1] and splits.y_val.tolist() == [0] and splits.y_test.tolist() == [1]
    codes = write_npz(tmp_path / "codes.npz", n_classes=2, per_class=3, y=np.array([0, 1, 0, 1, 0, 1]),
                      split=np.array([0, 0, 0, 0, 1, 2]))
    assert data.load_npz(codes, 8).y_test.tolist() == [1]


def test_npz_through_load_splits(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", n_classes=3, per_class=10)
    cfg = TrainConfig(dataset_name="npz", dataset_path=str(path), dataset_classes=3, dataset_seq_len=5)
    splits = data.load_splits(cfg)
    assert splits.x_test.shape[1:] == (5, 10) and str(path) in splits.description
    assert splits.num_classes == 3


@pytest.mark.parametrize("name", [{}, {"dataset.name": "synthetic"}])
def test_a_data_path_beside_synthetic_data_is_refused_in_words_true_whether_the_name_was_written(name) -> None:
    """It said "dataset.name is synthetic (the default)" and "add dataset.name" where the user wrote synthetic."""
    from trials.config import ConfigError

    with pytest.raises(ConfigError) as info:
        TrainConfig.from_flat({**name, "dataset.path": "data.npz"})
    assert str(info.value) == ("dataset.path='data.npz' is not allowed: a file or folder only for dataset.name npz or "
                               "wlasl; dataset.name is synthetic (the default where not given), which generates its "
                               "data: set dataset.name: npz or wlasl")


def test_a_data_path_under_home_is_read_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dataset.path: ~/data.npz`` (no shell expands a ~ in YAML or after --set's =) was "file not found" for a
    file that exists, in sweeper validate, run and train alike: each read the path as a folder named ~."""
    from search_spaces.loader import load_spec
    from sweeper.preflight import check_data_found, check_same_data
    from trials.datasets import data_fingerprint

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    path = write_npz(tmp_path / "home" / "data.npz", n_classes=3, per_class=10)
    cfg = TrainConfig.from_flat({"dataset.name": "npz", "dataset.path": "~/data.npz", "dataset.classes": 3,
                                 "objective": "val_top1"})
    assert cfg.dataset_path == str(path) and str(path) in data.load_splits(cfg).description
    (tmp_path / "space.yaml").write_text("training: {dataset: {name: npz, path: ~/data.npz, classes: 3}}\n"
                                         "objective: {metric: val_top1}\n"
                                         "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    spec = load_spec(tmp_path / "space.yaml")
    assert check_data_found(spec, tmp_path) == data_fingerprint("npz", path)
    with pytest.raises(DataError, match=rf"training\.dataset: {path} is not the data study 'space' began with \(its"):
        check_same_data(spec, "sha256:then", "sha256:now", tmp_path)


@pytest.mark.parametrize(("classes", "words"), [
    (20, "class 3 has no training samples: the labels run 0..2 but dataset.classes=20 (set it to 3)"),
    (2, "y[12]=2 is out of range [0, 2) (dataset.classes=2): set dataset.classes to 3"),
    # every label 0: not "set it to 1", which the config refuses (dataset.classes is at least 2)
    (2, "class 1 has no training samples: the labels run 0..0 but dataset.classes=2 (a classifier needs samples of "
        "at least 2 classes)"),
])
def test_npz_labels_must_match_dataset_classes(tmp_path: Path, classes: int, words: str) -> None:
    path = write_npz(tmp_path / "data.npz", n_classes=1 if "0..0" in words else 3, per_class=6)
    cfg = TrainConfig(dataset_name="npz", dataset_path=str(path), dataset_classes=classes, dataset_seq_len=5)
    assert f"{path}: {words}" in error_of(data.load_splits, cfg)


# ---- npz errors -----------------------------------------------------------------------------------
def test_npz_missing_file(tmp_path: Path) -> None:
    assert "data.npz: file not found" in error_of(data.load_npz, tmp_path / "data.npz", 8)


def test_npz_unreadable(tmp_path: Path) -> None:
    (tmp_path / "data.npz").write_bytes(b"not a zip")
    assert "data.npz: cannot be read as .npz" in error_of(data.load_npz, tmp_path / "data.npz", 8)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_corrupted_inside_the_archive(tmp_path: Path, compressed: bool) -> None:
    """A zip whose member is damaged on disk (a bad CRC, a broken deflate stream), not only a file that is no zip."""
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    (np.savez_compressed if compressed else np.savez)(path, X=rng.standard_normal((12, 8, 5, 2)), y=np.arange(12) % 3)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside X's data, well before the central directory
    path.write_bytes(bytes(raw))
    assert "data.npz: cannot be read as .npz" in error_of(data.load_npz, path, 8)


def test_npz_object_array(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 2, 2)), np.zeros((4, 2, 2))
    path = write_npz(tmp_path / "data.npz", X=ragged)
    assert "data.npz: X is an object array (dtype object, which only unpickling reads)" in \
        error_of(data.load_npz, path, 8)


class _Payload:
    """What an object array may hold: unpickling it would run ``touch`` (a data file must never be unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {self.marker}",)


def test_npz_object_array_left_alone_where_nothing_reads_it(tmp_path: Path) -> None:
    """Other arrays are the file's own: metadata stored as objects neither stops the data nor is unpickled (it was
    refused as "holds object arrays", naming no array: found by an exploratory test); y as objects is refused."""
    marker = tmp_path / "unpickled"
    meta = np.array([{"fps": 30}, _Payload(marker)], dtype=object)
    splits = data.load_npz(write_npz(tmp_path / "data.npz", meta=meta), 8)
    assert splits.num_classes == 3 and not marker.exists()
    payload = np.array([_Payload(marker)] * 18, dtype=object)
    assert "y is an object array" in error_of(data.load_npz, write_npz(tmp_path / "bad.npz", y=payload), 8)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["X", "y"])
def test_npz_missing_array(tmp_path: Path, key: str) -> None:
    path = write_npz(tmp_path / "data.npz", **{key: None})
    assert f"data.npz: has no array {key!r}" in error_of(data.load_npz, path, 8)


def test_npz_x_wrong_dimensions(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", X=np.zeros((10, 32, 21)))
    assert "data.npz: X has shape (10, 32, 21) but must be [N, T, L, D] (4 dimensions)" in error_of(
        data.load_npz, path, 8)


def test_npz_x_empty_dimension(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", X=np.zeros((18, 0, 5, 2)))
    assert "data.npz: X has shape (18, 0, 5, 2)" in error_of(data.load_npz, path, 8)


def test_npz_x_not_numeric(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", X=np.full((18, 2, 2, 2), "a"))
    assert "data.npz: X has dtype <U1" in error_of(data.load_npz, path, 8)


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "inf")])
def test_npz_x_not_finite(tmp_path: Path, value: float, word: str) -> None:
    x = np.zeros((18, 8, 5, 2))
    x[2, 7, 1, 0] = value
    path = write_npz(tmp_path / "data.npz", X=x)
    assert f"data.npz: X[2] contains {word} at frame 7" in error_of(data.load_npz, path, 8)


def test_npz_x_beyond_any_coordinate_or_all_zeros(tmp_path: Path) -> None:
    """Coordinates near float64's largest make the centring's mean inf, and the trial's loss NaN (blamed on the lr);
    a file of zeros (extraction that found nothing) trains to chance: both are the file's fault, said so."""
    x = np.random.default_rng(0).standard_normal((18, 8, 5, 2))
    x[4, 3, 2, 1] = -1e308
    path = write_npz(tmp_path / "data.npz", X=x)
    assert "data.npz: X[4] holds -1e+308 at frame 3 (landmark 2, coordinate 1), which is no position: at most 1e+12" \
        in error_of(data.load_npz, path, 8)
    lowest = np.zeros((18, 8, 5, 2), dtype=np.int64)
    lowest[1, 2, 3, 0] = np.iinfo(np.int64).min  # whose absolute value is itself
    path = write_npz(tmp_path / "data.npz", X=lowest)
    assert "X[1] holds -9.22337e+18 at frame 2" in error_of(data.load_npz, path, 8)
    x[4, 3, 2, 1] = 1e11  # large, as pixels of a big frame are not, but a position
    assert data.load_npz(write_npz(tmp_path / "data.npz", X=x), 8).x_train.isfinite().all()
    path = write_npz(tmp_path / "data.npz", X=np.zeros((18, 8, 5, 2)))
    assert "data.npz: X is all zeros" in error_of(data.load_npz, path, 8)
    entries = {v: {"subset": s, "action": [0, 1, -1]} for v, s in (("a", "train"), ("b", "val"), ("c", "test"))}
    write_wlasl(tmp_path / "w", entries, {v: np.zeros((10, 21, 3)) for v in entries})
    assert "landmarks: every video's landmarks are all zeros" in error_of(data.load_wlasl, tmp_path / "w")


@pytest.mark.parametrize("key", ["y", "signer", "split"])
def test_npz_length_mismatch(tmp_path: Path, key: str) -> None:
    values = {"y": np.zeros(17, dtype=int), "signer": np.zeros(17, dtype=int), "split": np.array(["train"] * 17)}
    path = write_npz(tmp_path / "data.npz", **{key: values[key]})
    assert f"data.npz: {key} has 17 entries but X has 18 samples" in error_of(data.load_npz, path, 8)


def test_npz_labels_wrong_dimensions(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", y=np.zeros((18, 1), dtype=int))
    assert "data.npz: y has shape (18, 1) but must be [N]" in error_of(data.load_npz, path, 8)


def test_npz_labels_not_integer(tmp_path: Path) -> None:
    y = np.repeat(np.arange(3.0), 6)
    y[3] = 2.5
    path = write_npz(tmp_path / "data.npz", y=y)
    assert "data.npz: y[3]=2.5 is not an integer class id" in error_of(data.load_npz, path, 8)


def test_npz_labels_integral_floats_are_accepted(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", y=np.repeat(np.arange(3.0), 6))
    assert data.load_npz(path, 8).num_classes == 3


def test_npz_labels_strings(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", y=np.array(["hello"] * 18))
    assert "data.npz: y has dtype <U5 but must hold integer class ids" in error_of(data.load_npz, path, 8)


def test_npz_label_out_of_range_of_explicit_classes(tmp_path: Path) -> None:
    y = np.arange(30) % 20
    y[17] = 25
    path = write_npz(tmp_path / "data.npz", X=np.zeros((30, 4, 2, 2)), y=y)
    msg = error_of(data.load_npz, path, 8, classes=20)
    assert "data.npz: y[17]=25 is out of range [0, 20) (dataset.classes=20)" in msg


def test_npz_negative_label(tmp_path: Path) -> None:
    y = np.repeat(np.arange(3), 6)
    y[4] = -1
    path = write_npz(tmp_path / "data.npz", y=y)
    assert "data.npz: y[4]=-1 is out of range [0, 3)" in error_of(data.load_npz, path, 8)


def test_npz_label_too_large_for_int64_is_not_wrapped_round(tmp_path: Path) -> None:
    y = np.repeat(np.arange(3), 6).astype(np.uint64)
    y[2] = 2**64 - 1  # as int64, -1: the error named a value the file does not hold
    path = write_npz(tmp_path / "data.npz", y=y)
    assert "data.npz: y[2]=18446744073709551615 is no class id" in error_of(data.load_npz, path, 8)
    path = write_npz(tmp_path / "big.npz", y=np.where(np.arange(18) == 5, 1e300, np.arange(18) % 3))
    assert "big.npz: y[5]=1e+300 is no class id" in error_of(data.load_npz, path, 8)


def test_npz_class_without_training_samples(tmp_path: Path) -> None:
    y = np.repeat(np.array([0, 1, 2, 4]), 6)  # class 3 never appears
    path = write_npz(tmp_path / "data.npz", X=np.random.default_rng(0).standard_normal((24, 4, 2, 2)), y=y)
    assert "data.npz: class 3 has no training samples" in error_of(data.load_npz, path, 8)


def test_npz_class_only_outside_train(tmp_path: Path) -> None:
    split = np.array(["train", "train", "val", "test", "val", "test"])
    path = write_npz(tmp_path / "data.npz", X=np.ones((6, 3, 2, 2)), y=np.array([0, 0, 1, 1, 0, 0]), split=split)
    assert "data.npz: class 1 has no training samples" in error_of(data.load_npz, path, 8)


@pytest.mark.parametrize(("split", "shown"), [(np.array(["train"] * 17 + ["dev"]), "'dev'"),
                                               (np.array([0] * 17 + [3]), "3")])
def test_npz_bad_split_value(tmp_path: Path, split: np.ndarray, shown: str) -> None:
    path = write_npz(tmp_path / "data.npz", split=split)
    assert f"data.npz: split[17]={shown} is not one of 'train', 'val', 'test'" in error_of(data.load_npz, path, 8)


def test_npz_bad_split_dtype(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", split=np.zeros(18))
    assert "data.npz: split has dtype float64" in error_of(data.load_npz, path, 8)


def test_npz_empty_split(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", split=np.array(["train"] * 12 + ["val"] * 6))
    assert "data.npz: the test split is empty" in error_of(data.load_npz, path, 8)


def test_npz_signer_ids_must_be_finite(tmp_path: Path) -> None:
    signer = np.repeat(np.arange(6.0), 3)
    signer[4] = np.nan  # NaN is no signer: np.isin never matches it, so it would slip into training unseen
    path = write_npz(tmp_path / "data.npz", signer=signer)
    assert "data.npz: signer[4]=nan is not a signer id" in error_of(data.load_npz, path, 8)


def test_npz_too_few_signers(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz", signer=np.array(["a", "b"] * 9))
    message = error_of(data.load_npz, path, 8)
    assert "data.npz: signer: need at least 3 signers" in message
    assert message.endswith("or store a 'split' array ('train'/'val'/'test' per sample), or leave out 'signer' for "
                            "a split stratified by class")  # the ways out


# ------------------------------------------------------------------------------------------------
# WLASL
# ------------------------------------------------------------------------------------------------
def test_wlasl_loads_with_frame_ranges(tmp_path: Path) -> None:
    _, videos = small_wlasl(tmp_path)
    entries = json.loads((tmp_path / "nslt_3.json").read_text())
    entries["v00"]["action"] = [0, 3, 9]  # frames 3..9, 1-based inclusive -> indices 2..8
    entries["v11"]["action"] = [1, 5, -1]  # frame 5 to the end
    (tmp_path / "nslt_3.json").write_text(json.dumps(entries))
    cfg = TrainConfig(dataset_name="wlasl", dataset_path=str(tmp_path), dataset_split_file="nslt_3.json",
                      dataset_classes=3, dataset_seq_len=7)
    splits = data.load_splits(cfg)
    assert splits.num_classes == 3 and splits.feature_dim == 8
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (6, 3, 3)
    assert splits.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(splits.x_train[0], data.preprocess(videos["v00"][2:9], 7), rtol=1e-6)
    np.testing.assert_allclose(splits.x_train[3], data.preprocess(videos["v11"][4:], 7), rtol=1e-6)
    np.testing.assert_allclose(splits.x_val[0], data.preprocess(videos["v02"], 7), rtol=1e-6)


def test_wlasl_classes_from_file_name_or_labels(tmp_path: Path) -> None:
    small_wlasl(tmp_path, "mini.json")
    assert data.load_wlasl(tmp_path, "mini.json", seq_len=4).num_classes == 3
    msg = error_of(data.load_wlasl, tmp_path, "mini.json", seq_len=4, classes=5)
    assert "mini.json: class 3 has no training samples: the labels run 0..2 but dataset.classes=5 (set it to 3)" in msg


@pytest.mark.parametrize(("classes", "words"), [
    (3, None),
    (4, "class 3 has no training samples: the labels run 0..2 but dataset.classes=4 (set it to 3)"),
    (2, "video 'v20' has class 2 but dataset.classes=2 means 2 classes (0..1): set dataset.classes to 3"),
])
def test_wlasl_labels_must_match_dataset_classes(tmp_path: Path, classes: int, words: str | None) -> None:
    small_wlasl(tmp_path)
    cfg = TrainConfig(dataset_name="wlasl", dataset_path=str(tmp_path), dataset_split_file="nslt_3.json",
                      dataset_classes=classes, dataset_seq_len=4)
    if words is None:
        assert data.load_splits(cfg).num_classes == 3
    else:
        assert f"{tmp_path / 'nslt_3.json'}: {words}" == error_of(data.load_splits, cfg)


# ---- WLASL errors ---------------------------------------------------------------------------------
def test_wlasl_missing_root(tmp_path: Path) -> None:
    assert "nowhere: WLASL root folder not found" in error_of(data.load_wlasl, tmp_path / "nowhere")


def test_wlasl_missing_split_file(tmp_path: Path) -> None:
    assert "nslt_100.json: split file not found" in error_of(data.load_wlasl, tmp_path, "nslt_100.json")


def test_wlasl_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "nslt_100.json").write_text('{"a": {"subset": "train",\n "action": [1, 2 3]}}')
    assert "nslt_100.json: invalid JSON (line 2" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_json_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "nslt_100.json").write_text("[1, 2]")
    assert "nslt_100.json: must be a JSON object" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_json_without_videos(tmp_path: Path) -> None:
    (tmp_path / "nslt_100.json").write_text("{}")
    assert "nslt_100.json: lists no videos" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_missing_landmarks_folder(tmp_path: Path) -> None:
    (tmp_path / "nslt_100.json").write_text(json.dumps({"a": {"subset": "train", "action": [0, 1, -1]}}))
    assert "landmarks: landmarks folder not found" in error_of(data.load_wlasl, tmp_path)


@pytest.mark.parametrize(("entry", "words"), [
    ("oops", "video 'x': entry must be an object"),
    ({"subset": "dev", "action": [0, 1, -1]}, "video 'x' has subset 'dev'"),
    ({"subset": "train", "action": [0, 1]}, "video 'x' has action [0, 1]"),
    ({"subset": "train", "action": [0, "1", 5]}, "video 'x' has action [0, '1', 5]"),
    ({"subset": "train", "action": [-2, 1, 5]}, "video 'x' has class -2"),
])
def test_wlasl_bad_entry(tmp_path: Path, entry: object, words: str) -> None:
    write_wlasl(tmp_path, {"x": entry}, {"x": np.zeros((5, 2, 2))})
    assert f"nslt_100.json: {words}" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_class_beyond_the_file_name(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"x": {"subset": "train", "action": [140, 1, -1]}}, {"x": np.zeros((5, 2, 2))})
    msg = error_of(data.load_wlasl, tmp_path)
    assert "nslt_100.json: video 'x' has class 140 but the file name means 100 classes" in msg


def test_wlasl_class_beyond_explicit_classes(tmp_path: Path) -> None:
    small_wlasl(tmp_path, "mini.json")
    msg = error_of(data.load_wlasl, tmp_path, "mini.json", classes=2)
    assert "mini.json: video 'v20' has class 2 but dataset.classes=2 means 2 classes (0..1)" in msg


def test_wlasl_missing_npy(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {})
    msg = error_of(data.load_wlasl, tmp_path)
    assert "landmarks/abc123.npy: file not found (video 'abc123' listed in" in msg


def test_wlasl_unreadable_npy(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {})
    (tmp_path / "landmarks" / "abc123.npy").write_bytes(b"garbage")
    msg = error_of(data.load_wlasl, tmp_path)  # not numpy's advice to unpickle it
    assert "landmarks/abc123.npy: cannot be read as .npy (not a .npy array file)" in msg and "pickle" not in msg


def test_wlasl_npy_that_is_an_npz_archive(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {})
    with (tmp_path / "landmarks" / "abc123.npy").open("wb") as file:
        np.savez(file, seq=np.zeros((5, 2, 2)))
    assert "landmarks/abc123.npy: is an .npz archive, not one .npy array" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_npy_wrong_dimensions(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {"abc123": np.zeros((10, 63))})
    msg = error_of(data.load_wlasl, tmp_path)
    assert "landmarks/abc123.npy: has shape (10, 63) but must be [T, L, D] (3 dimensions)" in msg


def test_wlasl_npy_empty(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {"abc123": np.zeros((0, 21, 3))})
    assert "landmarks/abc123.npy: has shape (0, 21, 3)" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_npy_not_numeric(tmp_path: Path) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}},
                {"abc123": np.full((3, 2, 2), "a")})
    assert "landmarks/abc123.npy: has dtype <U1" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_npy_with_nan(tmp_path: Path) -> None:
    seq = np.zeros((10, 21, 3))
    seq[7, 4, 1] = np.nan
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": [0, 1, -1]}}, {"abc123": seq})
    assert "landmarks/abc123.npy: contains NaN at frame 7" in error_of(data.load_wlasl, tmp_path)


def test_wlasl_landmark_count_differs_between_videos(tmp_path: Path) -> None:
    entries = {v: {"subset": "train", "action": [0, 1, -1]} for v in ("a", "b")}
    write_wlasl(tmp_path, entries, {"a": np.zeros((5, 21, 3)), "b": np.zeros((5, 42, 3))})
    msg = error_of(data.load_wlasl, tmp_path)
    assert "landmarks/b.npy: has 42 landmarks x 3 coordinates but" in msg and "landmarks/a.npy" in msg


@pytest.mark.parametrize("action", [[0, 0, 5], [0, 8, 12], [0, 6, 4], [0, 11, -1]])
def test_wlasl_frames_out_of_bounds(tmp_path: Path, action: list[int]) -> None:
    write_wlasl(tmp_path, {"abc123": {"subset": "train", "action": action}}, {"abc123": np.zeros((10, 2, 2))})
    msg = error_of(data.load_wlasl, tmp_path)
    assert f"nslt_100.json: video 'abc123' has frames {action[1]}..{action[2]} but" in msg
    assert "landmarks/abc123.npy has 10 frames" in msg


def test_wlasl_class_without_training_samples(tmp_path: Path) -> None:
    entries, _ = small_wlasl(tmp_path)
    for video in ("v10", "v11"):
        entries[video]["subset"] = "val"
    (tmp_path / "nslt_3.json").write_text(json.dumps(entries))
    assert "nslt_3.json: class 1 has no training samples" in error_of(data.load_wlasl, tmp_path, "nslt_3.json")


def test_wlasl_empty_split(tmp_path: Path) -> None:
    entries, _ = small_wlasl(tmp_path)
    for entry in entries.values():
        if entry["subset"] == "test":
            entry["subset"] = "val"
    (tmp_path / "nslt_3.json").write_text(json.dumps(entries))
    assert "nslt_3.json: the test split is empty" in error_of(data.load_wlasl, tmp_path, "nslt_3.json")


# ------------------------------------------------------------------------------------------------
# found by an exploratory test of data files
# ------------------------------------------------------------------------------------------------
def test_npz_damaged_in_ways_zipfile_and_numpy_raise_other_errors_for(tmp_path: Path) -> None:
    """A member that is no .npy, an encrypted member and a garbled .npy header were tracebacks (exit 1)."""
    path = write_npz(tmp_path / "data.npz")
    with zipfile.ZipFile(path) as good, zipfile.ZipFile(tmp_path / "bytes.npz", "w") as archive:
        archive.writestr("X.npy", b"garbage" * 10)  # numpy hands a member without its magic back as bytes
        archive.writestr("y.npy", good.read("y.npy"))
    assert "bytes.npz: member 'X' is not a .npy array" in error_of(data.load_npz, tmp_path / "bytes.npz", 8)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"PK\x01\x02") + 8] |= 0x1  # the first member's "encrypted" flag, in the central directory
    (tmp_path / "encrypted.npz").write_bytes(bytes(raw))
    assert "encrypted.npz: cannot be read as .npz (RuntimeError" in error_of(data.load_npz, tmp_path / "encrypted.npz",
                                                                             8)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"{'descr'")
    raw[start + 2] = ord("#")  # numpy reads the header as a Python literal: a comment breaks it
    (tmp_path / "header.npz").write_bytes(bytes(raw))
    assert "header.npz: cannot be read as .npz" in error_of(data.load_npz, tmp_path / "header.npz", 8)


def test_npz_a_misspelt_optional_array_and_labels_from_one_say_what_to_do(tmp_path: Path) -> None:
    """An array 'signers' was ignored: the split became stratified, the same signers in train and test. Labels
    1..3 were told to set dataset.classes to 4, after which every class 0 trial failed."""
    path = write_npz(tmp_path / "data.npz", signers=np.arange(18) % 6, video_ids=np.arange(18))
    assert "has an array 'signers', which nothing reads (did you mean 'signer'?)" in error_of(data.load_npz, path, 8)
    path = write_npz(tmp_path / "ok.npz", video_ids=np.arange(18), signal=np.arange(18))  # the file's own arrays
    with zipfile.ZipFile(path, "a") as archive:  # and members: a note beside the arrays
        archive.writestr("meta.json", "{}")
    assert data.load_npz(path, 8).num_classes == 3
    path = write_npz(tmp_path / "named.npz", signer=np.arange(18) % 6, signer_names=np.array(["a"] * 18))
    assert "split by signer" in data.load_npz(path, 8).description
    path = write_npz(tmp_path / "one.npz", y=np.repeat(np.arange(1, 4), 6))
    assert "the labels run 1..3, and class ids count from 0: store y - 1" in \
        error_of(data.load_npz, path, 8, classes=3)


def test_wlasl_duplicate_ids_paths_as_ids_and_a_class_only_in_val_or_test(tmp_path: Path) -> None:
    entries, _ = small_wlasl(tmp_path)
    text = (tmp_path / "nslt_3.json").read_text()
    (tmp_path / "nslt_3.json").write_text(text[:-1] + ', "v00": {"subset": "test", "action": [2, 1, -1]}}')
    assert "'v00' is listed twice" in error_of(data.load_wlasl, tmp_path, "nslt_3.json")
    (tmp_path / "outside.npy").write_bytes((tmp_path / "landmarks" / "v00.npy").read_bytes())
    write_wlasl(tmp_path, {**entries, "../outside": {"subset": "train", "action": [0, 1, -1]}}, {}, "nslt_3.json")
    assert "video '../outside': a video id names a file in" in error_of(data.load_wlasl, tmp_path, "nslt_3.json")
    (tmp_path / "landmarks" / "a").mkdir()  # an id with a folder in landmarks/ is fine
    (tmp_path / "landmarks" / "a" / "v00.npy").write_bytes((tmp_path / "landmarks" / "v00.npy").read_bytes())
    write_wlasl(tmp_path, {**entries, "a/v00": entries["v00"]}, {}, "nslt_3.json")
    assert data.load_wlasl(tmp_path, "nslt_3.json").num_classes == 3
    moved = {v: {**e, "subset": "val"} if e["action"][0] == 2 else e for v, e in entries.items()}
    write_wlasl(tmp_path, moved, {}, "nslt_3.json")
    assert "class 2 has no training samples: its 4 samples all went to val/test (split by subset)" in \
        error_of(data.load_wlasl, tmp_path, "nslt_3.json")


def test_a_sweep_whose_splits_fail_every_trial_is_refused_before_it_starts(tmp_path: Path) -> None:
    """validate and run read the arrays but not the splits: a class with no training sample (or an empty val
    split) passed, and every trial of the study it wrote failed."""
    from search_spaces.loader import load_spec
    from sweeper.preflight import check_data_found

    split = np.array(["train", "val", "test"] * 6)
    split[np.repeat(np.arange(3), 6) == 1] = "test"  # class 1 is in test only
    write_npz(tmp_path / "data.npz", split=split)
    (tmp_path / "space.yaml").write_text("training: {dataset: {name: npz, path: data.npz, classes: 3}}\n"
                                         "objective: {metric: val_top1}\n"
                                         "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    with pytest.raises(DataError, match=r"training\.dataset: .*data\.npz: class 1 has no training samples: its 6 "):
        check_data_found(load_spec(tmp_path / "space.yaml"), tmp_path)


def test_a_study_refuses_data_that_changed_under_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file replaced under the same path was read by the resumed trials: one study compared trials trained on
    two datasets (33% on the first, 100% on the second, "targets first met")."""
    from search_spaces.loader import load_spec
    from sweeper.driver import open_study
    from sweeper.preflight import check_data_found, data_to_record
    from trials.synthetic import GENERATOR

    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "data.npz")
    (tmp_path / "space.yaml").write_text("training: {dataset: {name: npz, path: data.npz, classes: 3}}\n"
                                         "objective: {metric: val_top1}\n"
                                         "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    spec, url = load_spec(tmp_path / "space.yaml"), f"sqlite:///{tmp_path / 'sweeps.db'}"
    first = check_data_found(spec, tmp_path)
    assert first is not None and first.startswith("sha256:")
    study, _ = open_study(spec, url, "space.yaml", data=first)
    study.enqueue_trial({"lr": 0.005})  # a study with trials, resumed below
    assert open_study(spec, url, "space.yaml", data=check_data_found(spec, tmp_path))[0].user_attrs["data"] == first
    write_npz(tmp_path / "data.npz", per_class=7)
    with pytest.raises(DataError, match=r"data\.npz is not the data study 'space' began with"):
        open_study(spec, url, "space.yaml", data=check_data_found(spec, tmp_path))
    run = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "space.yaml", "--storage", url], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert run.returncode == 2 and "is not the data study 'space' began with" in run.stderr, run.stderr
    assert not (tmp_path / "sweeper_runs").exists()  # refused before Ray and the results folder
    # generated data: a study records the generator's version, and a sweeper whose generator changed refuses it
    generated = load_spec("asl20", quick=True)
    study, _ = open_study(generated, url, None, data=check_data_found(generated))
    assert study.user_attrs["data"] == check_data_found(generated) == GENERATOR
    study.set_user_attr("data", "synthetic data, generator 1")  # as a sweeper before 2026-12-01 would have made it
    assert data_to_record(generated, study.user_attrs, GENERATOR) == GENERATOR
    legacy = {k: v for k, v in study.user_attrs.items() if k != "data"}  # an earlier sweeper's study: none vouched
    assert data_to_record(generated, legacy, GENERATOR) is None and data_to_record(generated, {}, "x") == "x"
    with pytest.raises(DataError, match=r"this sweeper generates other synthetic data \(synthetic data, generator 2\) "
                                        r"than study 'asl20-quick' began with \(synthetic data, generator 1\)"):
        open_study(generated, url, None, data=check_data_found(generated))


def test_a_split_lacking_samples_says_what_fixes_it_for_how_it_was_split(tmp_path: Path) -> None:
    """Every split's refusal advised "more signers, another dataset.seed or a split array": wrong for a split array
    (which they have) and a WLASL split file (no seed, no array); a stratified split's empty val said nothing."""
    split = np.array(["train", "val", "test"] * 6)
    split[np.repeat(np.arange(3), 6) == 1] = "test"
    path = write_npz(tmp_path / "split.npz", split=split)
    assert "all went to val/test (split by the 'split' array): mark some of them 'train' in the 'split' array" in \
        error_of(data.load_npz, path, 8)
    path = write_npz(tmp_path / "tiny.npz", per_class=2)
    assert "the val split is empty (stratified split (seed 0)): val and test take 15% of each class's samples" in \
        error_of(data.load_npz, path, 8)
    entries, _ = small_wlasl(tmp_path)
    write_wlasl(tmp_path, {v: {**e, "subset": "val"} if e["action"][0] == 2 else e for v, e in entries.items()}, {},
                "nslt_3.json")
    message = error_of(data.load_wlasl, tmp_path, "nslt_3.json")
    assert "(split by subset): give some of them subset 'train' in the split file" in message
    assert "dataset.seed" not in message


def test_a_header_declaring_more_than_memory_is_named_not_a_traceback(tmp_path: Path) -> None:
    """numpy allocates what a .npy header declares before it reads the data: a damaged header declaring 229 TiB (more
    than any address space) was a MemoryError traceback, exit 1, in sweeper train, validate and run alike."""
    from numpy.lib import format as npy_format

    def npy(shape: tuple[int, ...]) -> bytes:  # a header and 64 bytes of the data it declares
        path = tmp_path / "member.npy"
        with open(path, "wb") as f:
            npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            f.write(b"\0" * 64)
        return path.read_bytes()

    path = write_npz(tmp_path / "data.npz")
    with zipfile.ZipFile(path) as good, zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("X.npy", npy((10**9, 1000, 21, 3)))
        archive.writestr("y.npy", good.read("y.npy"))
    assert "huge.npz: cannot be read as .npz (MemoryError: Unable to allocate 229. TiB" in \
        error_of(data.load_npz, tmp_path / "huge.npz", 8)
    small_wlasl(tmp_path / "wlasl")
    (tmp_path / "wlasl" / "landmarks" / "v00.npy").write_bytes(npy((10**9, 1000, 21, 3)))
    assert "v00.npy: cannot be read as .npy (MemoryError: Unable to allocate 229. TiB" in \
        error_of(data.load_wlasl, tmp_path / "wlasl", "nslt_3.json")
