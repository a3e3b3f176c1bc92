"""Data: synthetic determinism and difficulty knobs, preprocessing by hand, both real layouts, every bad-data error."""

import json

import numpy as np
import pytest
import torch

from trials.data import DataError, load_npz, load_wlasl, make_synthetic, preprocess, synthetic_splits


def test_synthetic_is_deterministic_from_its_seed():
    a = make_synthetic(5, 6, 6, seed=3)
    b = make_synthetic(5, 6, 6, seed=3)
    c = make_synthetic(5, 6, 6, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert not np.array_equal(a[0][0], c[0][0])
    lengths = {x.shape[0] for x in a[0]}
    assert all(x.shape[1:] == (21, 3) for x in a[0]) and min(lengths) >= 32 and max(lengths) <= 128


def test_synthetic_imbalance_gives_a_long_tail():
    _, y, _ = make_synthetic(20, 40, 6, imbalance=1.0, seed=0)
    counts = np.bincount(y, minlength=20)
    assert counts[0] > 5 * counts[-1] and counts.min() >= 3


def test_synthetic_splits_by_signer():
    splits = synthetic_splits(10, 12, 10, seed=0)
    assert splits.x_train.shape[1:] == (32, 63)
    assert len(splits.y_train) > len(splits.y_val) > 0 and len(splits.y_test) > 0
    assert set(splits.y_train.tolist()) == set(range(10))
    assert "split by signer" in splits.description


def test_preprocess_centres_scales_and_resamples():
    seq = np.zeros((3, 2, 1), dtype=np.float32)
    seq[:, 0, 0] = [0.0, 2.0, 4.0]
    seq[:, 1, 0] = [2.0, 4.0, 6.0]  # mean 3, deviations -3..3
    out = preprocess(seq, 5)
    assert out.shape == (5, 2)
    centred = seq[:, :, 0] - 3.0
    rms = np.sqrt(np.mean(centred ** 2))
    assert out[0] == pytest.approx(centred[0] / rms, rel=1e-5)
    assert out[-1] == pytest.approx(centred[-1] / rms, rel=1e-5)
    assert out[1] == pytest.approx((0.5 * centred[0] + 0.5 * centred[1]) / rms, rel=1e-5)  # linear in time


def npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def good_arrays(n=30, classes=3):
    rng = np.random.default_rng(0)
    return {"X": rng.normal(size=(n, 10, 4, 2)).astype(np.float32), "y": np.arange(n) % classes}


def test_npz_with_split_signer_and_neither(tmp_path):
    arrays = good_arrays()
    split = np.array(["train"] * 18 + ["val"] * 6 + ["test"] * 6)
    s = load_npz(npz(tmp_path, **arrays, split=split), 8)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (18, 6, 6)
    assert s.x_train.shape == (18, 8, 8) and s.x_train.dtype == torch.float32 and s.num_classes == 3
    by_signer = load_npz(npz(tmp_path, "s.npz", **arrays, signer=np.arange(30) % 5), 8)
    assert len(by_signer.y_train) + len(by_signer.y_val) + len(by_signer.y_test) == 30
    plain = load_npz(npz(tmp_path, "p.npz", **arrays), 8)
    assert len(plain.y_train) > len(plain.y_val) > 0


def wlasl(tmp_path, entries, frames=12):
    (tmp_path / "landmarks").mkdir()
    for video in entries:
        np.save(tmp_path / "landmarks" / f"{video}.npy", np.random.default_rng(1).normal(size=(frames, 5, 3)))
    (tmp_path / "nslt_100.json").write_text(json.dumps(entries))
    return tmp_path


def test_wlasl_layout_with_frame_ranges(tmp_path):
    entries = {f"v{i}": {"subset": ["train", "train", "val", "test"][i % 4], "action": [i % 2, 1, -1 if i % 3 else 6]}
               for i in range(12)}
    root = wlasl(tmp_path, entries)
    s = load_wlasl(root, "nslt_100.json", seq_len=6, classes=2)
    assert len(s.y_train) == 6 and len(s.y_val) == 3 and len(s.y_test) == 3
    assert s.num_classes == 2 and s.x_train.shape == (6, 6, 15)
    # without dataset.classes, nslt_100 means 100 classes, and 98 of them would have no training sample
    with pytest.raises(DataError, match="class 2 has no training samples"):
        load_wlasl(root, "nslt_100.json", seq_len=6)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda a: a.update(X=a["X"][..., 0]), "must be [N, T, L, D]"),
    (lambda a: a["X"].__setitem__((4, 3, 1, 0), np.nan), "X[4] contains NaN at frame 3"),
    (lambda a: a.update(y=a["y"][:-1]), "y has 29 entries but X has 30"),
    (lambda a: a.update(y=a["y"] + 0.5), "is not an integer class id"),
    (lambda a: a.update(split=np.array(["train"] * 29 + ["dev"])), "split"),
    (lambda a: a.update(signer=np.arange(31)), "signer has 31 entries"),
    (lambda a: a.pop("y"), "has no array 'y'"),
])
def test_every_npz_error_names_the_file_and_the_item(tmp_path, change, expected):
    arrays = good_arrays()
    change(arrays)
    with pytest.raises(DataError) as info:
        load_npz(npz(tmp_path, **arrays), 8)
    assert "data.npz" in str(info.value) and expected in str(info.value)


def test_npz_label_out_of_range_and_empty_class(tmp_path):
    arrays = good_arrays()
    with pytest.raises(DataError, match=r"data\.npz: y\[\d+\]=2 is out of range \[0, 2\)"):
        load_npz(npz(tmp_path, **arrays), 8, classes=2)
    with pytest.raises(DataError, match="class 3"):
        load_npz(npz(tmp_path, "e.npz", **arrays), 8, classes=4)  # class 3 has no samples
    with pytest.raises(DataError, match="file not found"):
        load_npz(tmp_path / "missing.npz", 8)


def test_every_wlasl_error_names_the_file_and_the_item(tmp_path):
    entries = {"a": {"subset": "train", "action": [0, 1, -1]}, "b": {"subset": "val", "action": [1, 1, -1]},
               "c": {"subset": "test", "action": [1, 1, -1]}}
    root = wlasl(tmp_path, entries)
    (root / "landmarks" / "b.npy").unlink()
    with pytest.raises(DataError, match=r"b\.npy: file not found \(video 'b'"):
        load_wlasl(root, "nslt_100.json")
    np.save(root / "landmarks" / "b.npy", np.full((4, 5, 3), np.inf))
    with pytest.raises(DataError, match=r"b\.npy: contains inf at frame 0"):
        load_wlasl(root, "nslt_100.json")
    np.save(root / "landmarks" / "b.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match=r"b\.npy: has shape \(4, 5\)"):
        load_wlasl(root, "nslt_100.json")
    (root / "nslt_100.json").write_text(json.dumps({**entries, "a": {"subset": "train", "action": [140, 1, -1]}}))
    with pytest.raises(DataError, match="video 'a' has class 140"):
        load_wlasl(root, "nslt_100.json")
    (root / "nslt_100.json").write_text("{not json")
    with pytest.raises(DataError, match=r"nslt_100\.json"):
        load_wlasl(root, "nslt_100.json")
    with pytest.raises(DataError, match="not found"):
        load_wlasl(tmp_path / "nowhere", "nslt_100.json")


def test_wlasl_frame_range_beyond_the_video_is_an_error(tmp_path):
    entries = {"a": {"subset": "train", "action": [0, 5, 40]}, "b": {"subset": "val", "action": [0, 1, -1]},
               "c": {"subset": "test", "action": [0, 1, -1]}}
    with pytest.raises(DataError, match="'a'"):
        load_wlasl(wlasl(tmp_path, entries), "nslt_100.json")
