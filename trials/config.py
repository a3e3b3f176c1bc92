"""The flat configuration of one training run.

A trial is described by a flat ``dict`` whose keys are dotted names (``dataset.classes``, ``model.size``,
``label_smoothing``). Flat keys are what Optuna parameters, Ray Tune configs and ``--set key=value`` all speak,
so one dict travels unchanged from the YAML (nested there or dotted: ``flatten``) to the training loop. This module
owns the list of accepted keys, their defaults (taken from the seed pipelines, see README) and their coercion.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from trials.errors import ConfigError
from trials.synthetic import SYNTHETIC_KNOBS  # numpy only: the defaults of the generator's difficulty knobs

MODEL_PRESETS: dict[str, tuple[int, int, int]] = {
    # name: (hidden, layers, heads); seeds 001/000: small 64/3/8, large 256/6/16; medium 128/4 from seed 000.
    "small": (64, 3, 8),
    "medium": (128, 4, 8),
    "large": (256, 6, 16),
}
# frames: 4x the seeds' 128, past any sign's length. Attention (full, with dropout) grows with its square: at 4096
# one small batch asked for over 20 GB, and the kernel's OOM killer ended the process without a word
MAX_SEQ_LEN = 512


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of the training core, with the seeds' defaults.

    Field names use ``_`` where the flat key uses ``.``: ``dataset_classes`` is ``dataset.classes``.
    """

    # --- data ---------------------------------------------------------------------------------------
    dataset_name: str = "synthetic"  # synthetic | npz | wlasl
    dataset_path: str = ""  # .npz file, or the WLASL root (landmarks/ + nslt_*.json)
    dataset_split_file: str = "nslt_100.json"  # WLASL split file name, relative to dataset.path
    dataset_landmarks_dir: str = "landmarks"  # WLASL: folder of <video_id>.npy, relative to dataset.path
    dataset_classes: int = 20  # synthetic: number of classes; real data: must match the labels
    dataset_samples_per_class: int = 24  # synthetic: samples per class before imbalance
    dataset_signers: int = 10  # synthetic: signers; split train/val/test by signer
    dataset_imbalance: float = 0.0  # synthetic: 0 = balanced; >0 = long tail (Zipf exponent)
    dataset_noise: float = 1.0  # synthetic: multiplier on all per-sample noise
    dataset_signer_style: float = SYNTHETIC_KNOBS.signer_style  # synthetic: each signer's own version of each sign
    dataset_family_pose: float = SYNTHETIC_KNOBS.family_pose  # synthetic: std of a family's handshape, radians
    dataset_held_out_factor: int = 1  # synthetic: val/test get this many times as many signers, training the same
    dataset_seed: int = 0  # synthetic: data seed, independent from the training seed
    dataset_seq_len: int = 32  # frames after resampling
    # --- model --------------------------------------------------------------------------------------
    model_size: str = "small"  # small | medium | large
    model_hidden: int = 0  # 0 = preset
    model_layers: int = 0  # 0 = preset
    model_heads: int = 0  # 0 = preset
    dropout: float = 0.1
    # --- optimisation -------------------------------------------------------------------------------
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-3
    label_smoothing: float = 0.1
    warmup_epochs: float = -1.0  # -1 = 10% of epochs; may be fractional (stepped per optimizer step)
    grad_clip: float = 1.0  # 0 disables
    mixup_alpha: float = 0.0  # 0 disables
    class_weights: bool = False
    early_stopping: int = 0  # patience in epochs on the objective; 0 disables
    # --- run ----------------------------------------------------------------------------------------
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default (the driver sets it from resources)
    objective: str = "val_top3"  # metric that picks the best checkpoint and drives early stopping
    checkpoint_every: int = 1  # epochs between checkpoints (only when a checkpoint dir is given)

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        """The flat keys the core accepts, in declaration order."""
        return [_flat_key(f.name) for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The flat default configuration."""
        return cls().to_flat()

    @classmethod
    def from_flat(cls, config: Mapping[str, Any], *, validate: bool = True) -> TrainConfig:
        """Build and validate a config from a flat dict; unknown keys are errors with a suggestion."""
        known = {_flat_key(f.name): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in config.items():
            if key not in known:
                raise ConfigError(unknown_key(key, list(known), "setting"), key)
            values[known[key].name] = coerce(key, raw, known[key].type)
        if values.get("dataset_path"):  # ~ in YAML, or after --set's =, reaches us as it is: no shell expands it
            values["dataset_path"] = os.path.expanduser(values["dataset_path"])
        cfg = cls(**values)
        if validate:
            cfg.validate()
        return cfg

    def to_flat(self) -> dict[str, Any]:
        return {_flat_key(f.name): getattr(self, f.name) for f in fields(self)}

    # ------------------------------------------------------------------------------------------------
    @property
    def architecture(self) -> tuple[int, int, int]:
        """(hidden, layers, heads) after applying explicit overrides to the preset."""
        hidden, layers, heads = MODEL_PRESETS[self.model_size]
        return (self.model_hidden or hidden, self.model_layers or layers, self.model_heads or heads)

    @property
    def resolved_warmup_epochs(self) -> float:
        """Seed 000: warmup defaults to 10% of the epochs."""
        return 0.1 * self.epochs if self.warmup_epochs < 0 else self.warmup_epochs

    def validate(self) -> None:
        if problems := self.problems():
            raise problems[0]

    def problems(self) -> list[ConfigError]:
        """Every rule the config breaks, in order: a space's check judges each group of related settings alone."""
        found: list[ConfigError] = []

        def need(ok: bool, key: str, allowed: str, *partners: str) -> None:
            if not ok:
                found.append(ConfigError(f"{key}={self.to_flat()[key]!r} is not allowed: {allowed}", key, partners))

        for key, value in self.to_flat().items():  # inf and NaN pass every >= check below
            need(not isinstance(value, float) or math.isfinite(value), key, "a finite number")
        need(self.dataset_name in ("synthetic", "npz", "wlasl"), "dataset.name", "one of synthetic, npz, wlasl")
        need(self.dataset_name == "synthetic" or bool(self.dataset_path), "dataset.path",
             "a file or folder is required for npz and wlasl datasets", "dataset.name")
        # the default name: a forgotten dataset.name would sweep on generated data, and say so only in passing
        need(self.dataset_name != "synthetic" or not self.dataset_path, "dataset.path",
             "a file or folder only for dataset.name npz or wlasl; dataset.name is synthetic (the default where "
             "not given), which generates its data: set dataset.name: npz or wlasl", "dataset.name")
        need(self.dataset_classes >= 2, "dataset.classes", "an integer >= 2")
        need(self.dataset_samples_per_class >= 3, "dataset.samples_per_class", "an integer >= 3")
        need(self.dataset_signers >= 3, "dataset.signers", "an integer >= 3 (train/val/test split by signer)")
        need(self.dataset_imbalance >= 0, "dataset.imbalance", "a number >= 0")
        need(self.dataset_noise >= 0, "dataset.noise", "a number >= 0")
        need(self.dataset_signer_style >= 0, "dataset.signer_style", "a number >= 0")
        need(self.dataset_family_pose >= 0, "dataset.family_pose", "a number >= 0")
        need(self.dataset_held_out_factor >= 1, "dataset.held_out_factor", "an integer >= 1")
        need(4 <= self.dataset_seq_len <= MAX_SEQ_LEN, "dataset.seq_len", f"an integer from 4 to {MAX_SEQ_LEN}")
        need(self.model_size in MODEL_PRESETS, "model.size", "one of " + ", ".join(MODEL_PRESETS))
        need(self.model_hidden >= 0, "model.hidden", "0 (preset) or a positive integer")
        need(self.model_layers >= 0, "model.layers", "0 (preset) or a positive integer")
        need(self.model_heads >= 0, "model.heads", "0 (preset) or a positive integer")
        hidden, _, heads = self.architecture if self.model_size in MODEL_PRESETS else (1, 1, 1)
        if self.model_hidden == 0:  # the preset's hidden size: the heads given must divide it
            need(hidden % heads == 0, "model.heads", f"a divisor of the hidden size ({hidden}, model.size "
                                                     f"{self.model_size}'s)", "model.size")
        else:
            need(hidden % heads == 0, "model.hidden", f"a multiple of the number of heads ({heads})", "model.heads",
                 "model.size")
        need(0 <= self.dropout < 1, "dropout", "a number in [0, 1)")
        need(self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.lr > 0, "lr", "a positive number")
        need(self.min_lr >= 0, "min_lr", f"a number in [0, lr] (lr={self.lr!r})")
        need(self.min_lr <= self.lr, "min_lr", f"a number in [0, lr] (lr={self.lr!r})", "lr")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        need(self.warmup_epochs == -1 or self.warmup_epochs >= 0, "warmup_epochs",
             f"-1 (10% of epochs) or a number in [0, epochs] (epochs={self.epochs})")
        need(self.warmup_epochs <= self.epochs, "warmup_epochs",
             f"-1 (10% of epochs) or a number in [0, epochs] (epochs={self.epochs})", "epochs")
        need(self.grad_clip >= 0, "grad_clip", "a number >= 0 (0 disables clipping)")
        need(self.mixup_alpha >= 0, "mixup_alpha", "a number >= 0 (0 disables mixup)")
        need(self.early_stopping >= 0, "early_stopping", "an integer >= 0 (0 disables)")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device", "auto, cpu, cuda or cuda:N")
        need(self.objective in OBJECTIVE_METRICS, "objective", "one of " + ", ".join(OBJECTIVE_METRICS))
        k = int(self.objective[-1]) if self.objective in OBJECTIVE_METRICS and self.objective[-1].isdigit() else 0
        need(k < self.dataset_classes, "objective", f"with {self.dataset_classes} classes every label is in the top "
             f"{k}, so it never improves and the first epoch's weights would be kept: use val_top1 or val_loss",
             "dataset.classes")
        need(0 <= self.threads <= 1024, "threads", "an integer from 0 (torch's default) to 1024")
        need(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1")
        return found


# Settings problems() judges against each other (its rules with partners). A space that samples one of a group is
# checked beside the extremes its sampled partners take: min_lr up to 5e-4 is fine beside an lr sampled from 1e-3,
# whatever the training block's lr.
RELATED_SETTINGS = (("lr", "min_lr"), ("epochs", "warmup_epochs"), ("model.size", "model.hidden", "model.heads"),
                    ("dataset.name", "dataset.path"))

# Metrics reported every epoch, and their study direction ("" for those no study should optimise), in Optuna's
# words: the driver, the YAML validation and the CLI all speak them. Final metrics are reported once, at the end.
EPOCH_METRICS: dict[str, str] = {
    "train_loss": "minimize",
    "val_loss": "minimize",
    "val_top1": "maximize",
    "val_top3": "maximize",
    "val_top5": "maximize",
    "lr": "",
    "epoch_seconds": "",
    "samples_per_second": "",
}
FINAL_METRICS: dict[str, str] = {"test_loss": "minimize", "test_top1": "maximize", "test_top3": "maximize",
                                 "test_top5": "maximize"}
# In a report a resumed run repeats from its checkpoint: schedulers record it but do not judge it again.
REPLAYED = "replayed"
STATE_FILE = "state.pt"  # a run's checkpoint in its checkpoint dir (trials.train writes and reads it)
OBJECTIVE_METRICS = [m for m, d in EPOCH_METRICS.items() if d]


def _flat_key(field_name: str) -> str:
    for prefix in ("dataset_", "model_"):
        if field_name.startswith(prefix):
            return prefix[:-1] + "." + field_name[len(prefix):]
    return field_name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def did_you_mean(word: Any, options: list[str]) -> str:
    names, typed = [str(o) for o in options], str(word).lower()
    exact = [o for o in names if o.lower() == typed]  # ASHA for asha
    # a dotted key's last part; a number's (a choice 0.2) is its decimals, which 2 does not abbreviate
    leaves = {o: o.lower().rsplit(".", 1)[-1] for o in names if not _is_number(o)}
    leaf = [o for o, last in leaves.items() if last == typed]  # classes: dataset.classes, not class_weights
    start = [o for o, last in leaves.items() if len(typed) >= 3 and last.startswith(typed)]  # grace_period
    hint = exact or (leaf if len(leaf) == 1 else []) or (start if len(start) == 1 else []) \
        or difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def unknown_key(key: Any, allowed: list[str], what: str = "key") -> str:
    if inside := [name for name in allowed if str(name).startswith(f"{key}.")]:  # --set training.dataset=3
        return f"{key!r} names a group of {what}s, not one {what}: set one of {', '.join(inside)}"
    return f"unknown {what} {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed) or '(none)'}"


def text_keys(value: Any) -> Any:
    """The value with its maps' keys, at any depth, as text, as JSON writes them (1: '1', true: 'true'): a config
    stored as JSON (a study's spec) gives a resumed trial the same, and a driver can sort its keys (Ray Tune does)."""
    if not isinstance(value, Mapping):
        return [text_keys(v) for v in value] if isinstance(value, list) else value
    if len(out := {k if isinstance(k, str) else json.dumps(k): text_keys(v) for k, v in value.items()}) < len(value):
        raise ValueError(f"{value!r} has keys that are one as text (1 and '1'), as the study stores them: keep one")
    return out


def flatten(nested: Mapping[str, Any], leaves: Collection[str] = (), prefix: str = "",
            ) -> tuple[dict[str, Any], list[str]]:
    """``{dataset: {classes: 5}}`` -> ``{"dataset.classes": 5}``, and the keys set twice; ``leaves`` hold dicts."""
    flat: dict[str, Any] = {}
    twice: list[str] = []
    for key, value in nested.items():
        name = f"{prefix}{key}"
        inner, again = flatten(value, leaves, f"{name}.") if isinstance(value, Mapping) and name not in leaves \
            else ({name: value}, [])
        twice += again + [k for k in inner if k in flat]
        flat.update(inner)
    return flat, twice


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten`; a key that cannot nest (``a.b`` where ``a`` is set too, in either order)
    stays dotted."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        if any(".".join(parents[:i]) in flat for i in range(1, len(parents) + 1)):
            out[key] = value
            continue
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _int_text(text: str) -> int | float:
    """``"42"`` exactly (``float()`` would round a 20-digit seed), ``"1e3"`` through float."""
    try:
        return int(text.strip())
    except ValueError:
        return float(text)


def coerce(key: str, raw: Any, kind: Any) -> Any:
    """Turn a YAML/CLI value into the field's type; strings from ``--set`` are parsed here."""
    kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind) if isinstance(kind, str) else kind
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return raw.lower() in ("true", "yes", "on", "1")
            if isinstance(raw, int) and raw in (0, 1):
                return bool(raw)
            raise ValueError
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError
            value = _int_text(raw) if isinstance(raw, str) else raw
            if isinstance(value, float) and not (value.is_integer() and abs(value) < 2**53):  # 1e30: not a count
                raise ValueError
            if not -2**63 <= int(value) < 2**63:  # what torch and the database hold
                raise ConfigError(f"{key}={raw!r} is not allowed: expected int from -2**63 to 2**63 - 1", key)
            return int(value)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind is str:
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ValueError
            return str(raw)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        pass
    else:
        return raw
    raise ConfigError(f"{key}={raw!r} is not allowed: expected {kind.__name__}", key)
