"""The two on-disk layouts, read and checked: every problem is one :class:`DataError` naming the file and the item.

* ``npz``: one ``.npz`` with ``X`` [N, T, L, D], ``y`` [N] and optional ``signer`` [N] and ``split`` [N].
* ``wlasl``: a WLASL root with ``landmarks/<video_id>.npy`` ([T, L, D] each) and an ``nslt_*.json`` split file.

A sweep worker that dies with a bare ``IndexError`` hours into a sweep tells nobody anything, so everything is
checked here, before any training starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trials.errors import DataError
from trials.splitting import SPLIT_NAMES, TEST, TRAIN, VAL, part_from_signers, remedy, signer_partition, stratified_part

NPZ_ARRAYS = ("X", "y", "signer", "split")  # what read_npz reads; "signer" and "split" are optional
MAX_COORDINATE = 1e12  # in any unit (pixels, metres, fractions of the frame) a landmark lies far within it
# what reading a damaged or unusual archive raises, beside ValueError: truncated, bad CRC, encrypted, Deflate64, a
# garbled .npy header (numpy parses it as a Python literal), one declaring more than memory (numpy allocates first)
UNREADABLE = (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
              tokenize.TokenError, SyntaxError, MemoryError)


@dataclass(frozen=True)
class Labelled:
    """Raw landmark sequences with class ids and split codes, before preprocessing."""

    name: str  # the file that errors name
    source: str  # start of the one-line description
    sequences: np.ndarray | Sequence[np.ndarray]  # [N, T, L, D], or N sequences of [T_i, L, D]
    y: np.ndarray  # [N] int64 class ids in [0, num_classes)
    part: np.ndarray  # [N] split codes (TRAIN, VAL, TEST)
    num_classes: int
    how: str  # how the split was made, for the description and errors


# ================================================================================================
# npz
# ================================================================================================
def read_npz(path: str | Path, *, classes: int | None = None, seed: int = 0) -> Labelled:
    """``X`` [N, T, L, D], ``y`` [N], optional ``signer`` [N] and ``split`` [N] ('train'/'val'/'test' or 0/1/2).

    The split comes from ``split`` if present, else by signer, else stratified 70/15/15 by ``seed``. Labels must
    lie in ``[0, classes)``; without ``classes`` the number of classes is ``max(y) + 1``.
    """
    name = str(path)
    arrays, found = _read_npz(Path(path), name)
    x = check_landmarks(_need(arrays, "X", name, found), f"{name}: X", "N, T, L, D")
    n = x.shape[0]
    y = _check_labels(_need(arrays, "y", name, found), name, n)
    num_classes = classes if classes is not None else int(y.max()) + 1
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        origin = f" (dataset.classes={classes})" if classes is not None else ""
        fix = f": set dataset.classes to {y.max() + 1}" if classes is not None and y.max() >= classes else ""
        if y.min() == 1 and y.max() == num_classes:  # numbered from 1, as a spreadsheet would
            fix = f": the labels run 1..{y.max()}, and class ids count from 0: store y - 1"
        raise DataError(f"{name}: y[{bad[0]}]={y[bad[0]]} is out of range [0, {num_classes}){origin}{fix}")
    _check_classes_used(y, name, classes)
    # other arrays are the file's own, but signers or Split where neither is read is a typo
    typos = [] if {"signer", "split"} & set(arrays) else \
        sorted(k for k in found if k.lower().rstrip("s") in ("signer", "split"))
    if typos:
        raise DataError(f"{name}: has an array {typos[0]!r}, which nothing reads (did you mean "
                        f"{typos[0].lower().rstrip('s')!r}?): without it the split would not be what you meant "
                        f"(arrays read: {', '.join(NPZ_ARRAYS)})")
    if "split" in arrays:
        part = _check_split(arrays["split"], name, n)
        how = "split by the 'split' array"
    elif "signer" in arrays:
        signer = _check_vector(arrays["signer"], "signer", name, n)
        if signer.dtype.kind == "f" and len(bad := np.flatnonzero(~np.isfinite(signer))):
            raise DataError(f"{name}: signer[{bad[0]}]={signer[bad[0]]} is not a signer id")  # NaN != NaN: no split
        try:
            train, val, test = signer_partition(signer, seed)
        except DataError as exc:
            raise DataError(f"{name}: signer: {exc}; or store a 'split' array ('train'/'val'/'test' per sample)"
                            ", or leave out 'signer' for a split stratified by class") from None
        part = part_from_signers(signer, val, test)
        how = f"split by signer {len(train)}/{len(val)}/{len(test)}"
    else:
        part = stratified_part(y, seed)
        how = f"stratified split (seed {seed})"
    if not x.any():
        raise DataError(f"{name}: X is all zeros: no landmark of any sample was extracted")
    return Labelled(name, f"npz {name}", x, y, part, num_classes, how)


def check_found(kind: str, path: str | Path, split_file: str = "nslt_100.json") -> None:
    """The file a reader opens first exists and opens, without reading an array: the driver checks this before a
    sweep, whose trials would all fail."""
    path = Path(path)
    if kind == "npz" and not path.is_file():
        raise DataError(f"{path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    if kind == "npz" and not zipfile.is_zipfile(path):  # np.load would try other formats, pickle included
        raise DataError(f"{path}: cannot be read as .npz (not a zip archive; write it with numpy.savez)")
    if kind == "npz":
        try:
            with zipfile.ZipFile(path) as archive:
                found = sorted(n.removesuffix(".npy") for n in archive.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot be read as .npz ({exc})") from None
        if missing := [key for key in ("X", "y") if key not in found]:
            raise DataError(f"{path}: has no array {missing[0]!r} (found: {', '.join(found) or 'none'})")
    if kind == "wlasl" and not path.is_dir():
        raise DataError(f"{path}: WLASL root folder not found")
    if kind == "wlasl" and not (path / split_file).is_file():
        raise DataError(f"{path / split_file}: split file not found (dataset.split_file)")
    if kind == "wlasl":
        _read_split_json(path / split_file, str(path / split_file))


def data_fingerprint(kind: str, path: str | Path, split_file: str = "nslt_100.json",
                     landmarks_dir: str = "landmarks") -> str:
    """``sha256:...`` of what a reader reads: an npz file's bytes; a WLASL split file's, and each listed video's
    name and size (hashing thousands of videos would take minutes)."""
    digest = hashlib.sha256()
    if kind == "npz":
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    else:
        root = Path(path)
        text = (root / split_file).read_bytes()
        digest.update(text)
        for video in sorted(json.loads(text)):
            npy = root / landmarks_dir / f"{video}.npy"
            digest.update(f"{video}:{npy.stat().st_size if npy.is_file() else -1};".encode())
    return f"sha256:{digest.hexdigest()}"


def _read_npz(path: Path, name: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays read (of ``NPZ_ARRAYS``, those present) and the names of all: the file's others are left alone,
    unread (an object array of metadata would need unpickling, a large one memory)."""
    check_found("npz", path)
    key = ""
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = list(archive.files)
            arrays = {}
            for key in (k for k in found if k in NPZ_ARRAYS):
                arrays[key] = archive[key]
    except ValueError as exc:
        if "pickle" in str(exc):  # a data file is never unpickled: it could run any code
            raise DataError(f"{name}: {key} is an object array (dtype object, which only unpickling reads); store "
                            "numbers, or fixed-width strings (signer, split)") from exc
        raise DataError(f"{name}: cannot be read as .npz ({exc})") from exc
    except UNREADABLE as exc:  # truncated or corrupted on disk, encrypted, or compressed as zipfile cannot read
        raise DataError(f"{name}: cannot be read as .npz ({type(exc).__name__}: {exc})") from exc
    if odd := [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]:  # no .npy
        raise DataError(f"{name}: member {odd[0]!r} is not a .npy array (write the file with numpy.savez)")
    return arrays, found


def _need(arrays: dict[str, np.ndarray], key: str, name: str, found: list[str]) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{name}: has no array {key!r} (found: {', '.join(sorted(found)) or 'none'})")
    return arrays[key]


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
    if y.dtype.kind not in "iuf":
        raise DataError(f"{name}: y has dtype {y.dtype} but must hold integer class ids")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y))) if y.dtype.kind == "f" else []
    if len(bad):
        raise DataError(f"{name}: y[{bad[0]}]={y[bad[0]]} is not an integer class id")
    if len(huge := np.flatnonzero(np.abs(y.astype(np.float64)) >= 2**62)):  # int64 would wrap it: 2**64-1 is -1
        raise DataError(f"{name}: y[{huge[0]}]={y[huge[0]]} is no class id (a class id counts from 0)")
    return y.astype(np.int64)


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


# ================================================================================================
# WLASL
# ================================================================================================
def read_wlasl(
    root: str | Path, split_file: str = "nslt_100.json", landmarks_dir: str = "landmarks", *,
    classes: int | None = None,
) -> Labelled:
    """A WLASL root: ``<split_file>`` maps video id -> {"subset", "action": [class, start, end]}.

    Frames are 1-based and inclusive; ``end = -1`` means to the last frame. Class ids are kept as they are and
    must be below ``classes``, or else below the number in the file name (nslt_100 -> 100), or else the number
    of classes is ``max + 1``.
    """
    root = Path(root)
    check_found("wlasl", root, split_file)
    json_path = root / split_file
    json_name = str(json_path)
    entries = _read_split_json(json_path, json_name)
    bound = classes if classes is not None else _classes_from_name(split_file)
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
            origin = f"dataset.classes={classes}" if classes is not None else "the file name"
            top = max(_check_entry(v, e, json_name)[1] for v, e in entries.items())
            raise DataError(f"{json_name}: video {video!r} has class {label} but {origin} means {bound} classes "
                            f"(0..{bound - 1}): set dataset.classes to {top + 1}")
        if Path(video).is_absolute() or ".." in Path(video).parts:  # an id names a file in landmarks/, below it
            raise DataError(f"{json_name}: video {video!r}: a video id names a file in {landmarks} (or a folder in "
                            "it), not a path elsewhere")
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
    if not any(seq.any() for seq in sequences):
        raise DataError(f"{landmarks}: every video's landmarks are all zeros: none was extracted")
    y = np.array(labels, dtype=np.int64)
    _check_classes_used(y, json_name, classes)
    num_classes = bound if bound is not None else int(y.max()) + 1
    return Labelled(json_name, f"wlasl {json_name}", sequences, y, np.array(parts), num_classes, "split by subset")


def _read_split_json(path: Path, name: str) -> dict[str, object]:
    def once(pairs: list[tuple[str, object]]) -> dict[str, object]:  # json.loads would keep the last of two
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DataError(f"{name}: {key!r} is listed twice; each video id (and each key) once")
            seen.add(key)
        return dict(pairs)

    try:
        entries = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=once)
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
        what = "is a folder" if path.is_dir() else "is a symlink to nothing, or a loop" if path.is_symlink() else \
            "file not found"
        raise DataError(f"{name}: {what} (video {video!r} listed in {json_name})")
    try:
        seq = np.load(path, allow_pickle=False)
    except (ValueError, *UNREADABLE) as exc:  # numpy takes any file without its magic for a pickle
        why = "not a .npy array file" if "pickled" in str(exc) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{name}: cannot be read as .npy ({why})") from None
    if not isinstance(seq, np.ndarray):  # np.load opens an .npz archive too, whatever the file's name
        seq.close()
        raise DataError(f"{name}: is an .npz archive, not one .npy array (write it with numpy.save)")
    return check_landmarks(seq, f"{name}:", "T, L, D")


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
# Shared checks
# ================================================================================================
def check_splits(data: Labelled) -> None:
    """Every split holds samples and every class has training ones; the driver checks this before a sweep, whose
    trials would all fail on it."""
    name, y, part = data.name, data.y, data.part
    for code, split in enumerate(SPLIT_NAMES):
        if not (part == code).any():
            raise DataError(f"{name}: the {split} split is empty ({data.how}): {remedy(data.how, split)}")
    missing = np.flatnonzero(np.bincount(y[part == TRAIN], minlength=data.num_classes) == 0)
    if len(missing):
        others = f" (nor do {len(missing) - 1} other classes)" if len(missing) > 1 else ""
        total = int((y == missing[0]).sum())
        why = "it has no samples at all" if not total else f"its {total} samples all went to val/test ({data.how}): " \
            + remedy(data.how, "train", "some of them")
        raise DataError(f"{name}: class {missing[0]} has no training samples{others}: {why}")


def _check_classes_used(y: np.ndarray, name: str, classes: int | None) -> None:
    """``dataset.classes`` must match the labels: a class past the last label would never be seen in training."""
    top = int(y.max())
    if classes is not None and top < classes - 1:  # dataset.classes=1 is refused: a classifier needs two
        fix = f"set it to {top + 1}" if top else "a classifier needs samples of at least 2 classes"
        raise DataError(f"{name}: class {top + 1} has no training samples: the labels run 0..{top} but "
                        f"dataset.classes={classes} ({fix})")


def check_landmarks(values: np.ndarray, what: str, axes: str) -> np.ndarray:
    """Landmarks shaped ``[axes]`` (ending in T, L, D): numeric, finite, no empty dimension.

    ``what`` starts every message (``data.npz: X``); a non-finite value is placed by sample (if there is an N
    axis), frame, landmark and coordinate.
    """
    dims = axes.count(",") + 1
    if values.ndim != dims:
        raise DataError(f"{what} has shape {values.shape} but must be [{axes}] ({dims} dimensions)")
    if min(values.shape) == 0:
        raise DataError(f"{what} has shape {values.shape}; no dimension of [{axes}] may be empty")
    if values.dtype.kind not in "fiu":
        raise DataError(f"{what} has dtype {values.dtype} but must be numeric landmark coordinates")
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(np.argwhere(bad)[0])
        *sample, t, landmark, coord = first
        kind = "NaN" if math.isnan(values[first]) else "inf"
        where = f"[{sample[0]}]" if sample else ""
        raise DataError(f"{what}{where} contains {kind} at frame {t} (landmark {landmark}, coordinate {coord})")
    if max(-float(values.min()), float(values.max())) > MAX_COORDINATE:  # near 1e308 their mean overflows to inf
        far = (values > MAX_COORDINATE) | (values < -MAX_COORDINATE)  # not abs: int64's lowest is its own
        *sample, t, landmark, coord = first = tuple(np.argwhere(far)[0])
        raise DataError(f"{what}{f'[{sample[0]}]' if sample else ''} holds {values[first]:g} at frame {t} (landmark "
                        f"{landmark}, coordinate {coord}), which is no position: at most {MAX_COORDINATE:g}")
    return values
