"""Fused trial groups: K configurations of one architecture trained at once, as one stacked model.

``run_group(configs, reports, checkpoint_dirs)`` is ``trials.run`` for K members at once. A step of the group is
one batched forward and backward over :class:`trials.stacked.StackedTransformer`, so it costs about as many
kernel launches as a step of one trial; that is the point on a GPU, where a small trial is bound by launches.

The contract is exactness: on the CPU, under the same seed, each member reports the same per-epoch metrics as
``trials.run(config)`` alone, within float tolerance. What makes it hold:

* Random numbers. Each member owns a :class:`RandomStream`, the state the global generators would have in its
  own run (seeded, advanced by its model's initialisation): its batch order, mixup draws and dropout masks come
  from it in its own run's order. (On CUDA they are drawn once for the whole group, ``exact_rng=False``: as
  random for each member, in a few launches instead of K; CUDA runs are not bit-reproducible anyway.)
* Per-member hyperparameters: lr, weight decay, warmup and cosine (its own schedule and step count), label
  smoothing, mixup alpha, class weights, clipping, dropout; AdamW is torch's single-tensor update written over
  the ``[K, P]`` weights with a column of per-member scalars.
* Checkpoints: ``state.pt`` in ``trials.train``'s format, so a member resumes alone or in any group.

A member leaves on its own, the others go on: its epochs done or stopped early (its outcome: its final metrics, as
``run`` returns), its loss not finite (the ``NonFiniteLossError``), its checkpoint another run's (``load_state``'s
``ConfigError``: it never joins), or its ``report`` raising (that exception: how a driver prunes one).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trials.config import REPLAYED, ConfigError, TrainConfig
from trials.data import Splits, load_splits
from trials.losses import inverse_frequency_weights, mixup
from trials.model import LandmarkTransformer
from trials.random_stream import RandomStream, shared_dropout, shared_mixup
from trials.stacked import StackedTransformer, no_dropout
from trials.train import (
    ADAM_BETAS,
    EVAL_BATCH,
    STATE_FILE,
    Report,
    checkpoint_due,
    epoch_metrics,
    evaluate,
    final_result,
    load_state,
    lr_schedule,
    new_model,
    new_optimizer,
    new_progress,
    non_finite_loss,
    patience_spent,
    resolve_device,
    save_state,
    track_best,
)

log = logging.getLogger("trials")

ADAM_EPS = 1e-8  # torch.optim.AdamW's default, which trials.train uses
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s
RUN_KEYS = ("batch_size", "device", "threads")  # shared by a group's members, as its data and architecture are


def group_key(config: Mapping[str, Any]) -> tuple:
    """Configs with equal keys can train as one group: same data, architecture, batch size, device, threads."""
    flat = (cfg := config if isinstance(config, TrainConfig) else TrainConfig.from_flat(config)).to_flat()
    return (*((k, v) for k, v in flat.items() if k.startswith("dataset.")),
            ("model architecture (hidden, layers, heads)", cfg.architecture), *((k, flat[k]) for k in RUN_KEYS))


@dataclass
class Member:
    """One configuration of the group and everything its own run would hold, except its weights (in the stack)."""

    index: int  # position in the caller's lists
    cfg: TrainConfig
    report: Report
    state_path: Path | None
    model: LandmarkTransformer  # on the CPU: initial weights, checkpoint reading and writing, the final test
    optimizer: torch.optim.AdamW  # the same, for the optimizer's part of a checkpoint
    rng: RandomStream
    schedule: Callable[[int], float]
    progress: dict[str, Any] = field(default_factory=new_progress)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    lr: float = 0.0


Outcome = dict[str, Any] | Exception


def run_group(configs: Sequence[Mapping[str, Any]], reports: Sequence[Report | None] | None = None,
              checkpoint_dirs: Sequence[str | os.PathLike | None] | None = None, *, exact_rng: bool | None = None,
              finished: Callable[[int, Outcome], Any] | None = None) -> list[Outcome]:
    """Train every config as one group; one outcome per config, in order: ``run``'s final metrics or the
    exception that ended that member (see the module docstring). ``finished(index, outcome)`` is called as
    each member leaves, while the others still train (a driver records it then, not when the group ends)."""
    cfgs = [TrainConfig.from_flat(c) for c in configs]
    check_compatible(cfgs)
    reports, dirs = list(reports or [None] * len(cfgs)), list(checkpoint_dirs or [None] * len(cfgs))
    started = time.perf_counter()
    if cfgs[0].threads:
        torch.set_num_threads(cfgs[0].threads)
    device = resolve_device(cfgs[0].device)
    data = load_splits(cfgs[0]).to(device)
    exact = device.type == "cpu" if exact_rng is None else exact_rng
    group = Group(cfgs, reports, dirs, data, device, started, exact_rng=exact, finished=finished)
    group.train()
    return [group.outcomes[i] for i in range(len(cfgs))]


def check_compatible(cfgs: Sequence[TrainConfig]) -> None:
    if not cfgs:
        raise ConfigError("a fused group needs at least one member")
    first = group_key(cfgs[0])
    for i, cfg in enumerate(cfgs[1:], start=1):
        for (key, a), (_, b) in zip(first, group_key(cfg), strict=True):
            if a != b:
                raise ConfigError(f"members of a fused group must share {key}: member 0 has {a!r}, "
                                  f"member {i} has {b!r}")


class Group:
    """The members still training, their stacked weights and AdamW moments; members leave, none join."""

    def __init__(self, cfgs: list[TrainConfig], reports: list[Report | None], dirs: list, data: Splits,
                 device: torch.device, started: float, *, exact_rng: bool,
                 finished: Callable[[int, Outcome], Any] | None = None) -> None:
        self.data, self.device, self.started, self.exact_rng = data, device, started, exact_rng
        self.finished = finished or (lambda index, outcome: None)
        torch.manual_seed(cfgs[0].seed)  # the group's own stream: what is not drawn per member (random_stream)
        self.cuda_devices = [device.index or 0] if device.type == "cuda" else []  # whose RNG fork_rng saves
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        self.steps_per_epoch = math.ceil(len(data.y_train) / cfgs[0].batch_size)
        self.class_weights = inverse_frequency_weights(data.y_train, data.num_classes).to(device)
        self.outcomes: dict[int, Outcome] = {}
        self.members = [m for i, c in enumerate(zip(cfgs, reports, dirs, strict=True)) if (m := self._member(i, *c))]
        if not self.members:  # every checkpoint refused
            return
        self.stack = StackedTransformer([m.model for m in self.members], device)
        self.exp_avg, self.exp_avg_sq = (torch.stack([self._moment(m, n) for m in self.members]).to(device)
                                         for n in ("exp_avg", "exp_avg_sq"))
        self._columns()
        for e in range(max((len(m.progress["history"]) for m in self.members), default=0)):  # as train.run does
            self._report_all([(m, {**m.progress["history"][e], REPLAYED: True})
                              for m in self.members if e < len(m.progress["history"])])
        self._leave([m for m in self.members if m.progress["epoch"] >= m.cfg.epochs], "completed")

    def _member(self, index: int, cfg: TrainConfig, report: Report | None, checkpoint_dir: Any) -> Member | None:
        """Build the member as its own run would: seed, initialise the model, then resume from its checkpoint."""
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.manual_seed(cfg.seed)
            model = new_model(cfg, self.data)
            optimizer = new_optimizer(cfg, model)
            state_path = Path(checkpoint_dir) / STATE_FILE if checkpoint_dir is not None else None
            progress, best_state = new_progress(), copy.deepcopy(model.state_dict())
            if state_path is not None and state_path.exists():
                try:  # another run's: this member fails at once, alone, as it fails ``run`` (not its group)
                    progress, best_state = load_state(state_path, model, optimizer, cfg, self.data.fingerprint)
                except ConfigError as exc:
                    return self._outcome(index, exc)
                log.info("member %d resumed from %s at epoch %d", index, state_path, progress["epoch"])
            return Member(index, cfg, report or (lambda metrics: None), state_path, model, optimizer,
                          RandomStream(self.device), lr_schedule(cfg, self.steps_per_epoch), progress, best_state)

    @staticmethod
    def _moment(m: Member, name: str) -> torch.Tensor:
        """One AdamW moment of a member, flattened in parameter order (zeros before its first step)."""
        return torch.cat([m.optimizer.state[p][name].reshape(-1) if p in m.optimizer.state
                          else torch.zeros(p.numel()) for p in m.model.parameters()])

    def _columns(self) -> None:
        """Per-member constants as [K, 1] columns, rebuilt whenever a member leaves."""
        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=self.device).unsqueeze(1)

        cfgs, classes = [m.cfg for m in self.members], self.data.num_classes
        self.off_target = column([c.label_smoothing / classes for c in cfgs])
        self.on_target = column([1.0 - c.label_smoothing for c in cfgs])
        self.keep_prob = column([1.0 - c.dropout for c in cfgs])
        self.mixup_alpha, self.mixed = column([c.mixup_alpha for c in cfgs]), any(c.mixup_alpha > 0 for c in cfgs)
        self.max_norm, self.clipped = column([c.grad_clip for c in cfgs]), any(c.grad_clip > 0 for c in cfgs)
        weighted = [c.class_weights for c in cfgs]
        self.loss_weights = (torch.stack([self.class_weights if w else torch.ones_like(self.class_weights)
                                          for w in weighted]) if any(weighted) else None)

    # --- the epoch loop --------------------------------------------------------------------------------------
    def train(self) -> None:
        while self.members:
            self._leave([m for m in self.members if patience_spent(m.progress, m.cfg)], "early_stopping")
            if not self.members:
                break
            epoch_start = time.perf_counter()
            train_losses = self._train_epoch()
            if not self.members:
                break
            train_seconds = time.perf_counter() - epoch_start
            vals = self._evaluate(self.data.x_val, self.data.y_val)
            keep = self._fail_diverged([val["loss"] for val in vals])  # NaN weights since the last step: NaN
            vals, train_losses = [vals[k] for k in keep], [train_losses[k] for k in keep]  # logits top every top-k
            if not self.members:
                break
            seconds, reports = time.perf_counter() - epoch_start, []
            for k, m in enumerate(self.members):
                epoch = m.progress["epoch"] + 1
                metrics = epoch_metrics(epoch, train_losses[k], vals[k], m.lr, seconds,
                                        len(self.data.y_train) / train_seconds)
                if track_best(m.progress, metrics, m.cfg):
                    m.best_state = self.stack.member_state(k)
                if m.state_path is not None and checkpoint_due(epoch, m.progress, m.cfg):
                    self._save(m, k)
                reports.append((m, metrics))
            self._report_all(reports)
            self._leave([m for m in self.members if m.progress["epoch"] >= m.cfg.epochs], "completed")

    def _train_epoch(self) -> list[float]:
        """One pass over the training split for every member, each in its own batch order (``train_epoch``)."""
        x, y, n = self.data.x_train, self.data.y_train, len(self.data.y_train)
        orders = []
        for m in self.members:
            with m.rng:
                orders.append(torch.randperm(n, device=self.device))
        order = torch.stack(orders)
        loss_sum = torch.zeros(len(self.members), device=self.device)
        batch = self.members[0].cfg.batch_size
        for first in range(0, n, batch):
            if not self.members:
                break
            index = order[:, first:first + batch]
            inputs, targets = self._mixup(x[index], self._targets(y[index]))
            for m in self.members:
                m.lr = m.schedule(m.progress["step"])
            with self.autocast:
                losses = self._losses(self.stack.forward(inputs, self._dropout), targets)
            finite = torch.isfinite(losses)
            failed = not bool(finite.all())
            (losses[finite] if failed else losses).sum().backward()
            grad = self.stack.flat_grad()
            if failed:
                keep = self._fail_diverged(losses.tolist())
                grad, loss_sum, losses, order = grad[keep], loss_sum[keep], losses[keep], order[keep]
                if not self.members:
                    break
            self._step(grad)
            loss_sum += losses.detach() * index.shape[1]
            for m in self.members:
                m.progress["step"] += 1
        return [total / n for total in loss_sum.tolist()]

    def _fail_diverged(self, losses: list[float]) -> list[int]:
        """Members whose loss is not finite fail (``NonFiniteLossError``) and leave; the others' old indices."""
        keep = [k for k, loss in enumerate(losses) if math.isfinite(loss)]
        if failed := [(m, loss) for m, loss in zip(self.members, losses, strict=True) if not math.isfinite(loss)]:
            for m, loss in failed:
                self._outcome(m.index, error := non_finite_loss(loss, m.progress["step"], m.cfg))
                log.warning("member %d failed: %s", m.index, error)
            self._keep(keep)
        return keep

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """``losses.smoothed_targets`` for every member at once, each with its own smoothing: [K, batch, classes]."""
        k, b = labels.shape
        targets = self.off_target.view(k, 1, 1).expand(k, b, self.data.num_classes).clone()
        return targets.scatter_add_(2, labels.unsqueeze(2), self.on_target.view(k, 1, 1).expand(k, b, 1))

    def _losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``losses.soft_cross_entropy`` per member: [K] (probability targets, mean over the batch)."""
        terms = torch.log_softmax(logits.float(), dim=-1) * targets
        if self.loss_weights is not None:
            terms = terms * self.loss_weights.unsqueeze(1)
        return -terms.sum(dim=(1, 2)) / logits.shape[1]

    def _mixup(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's ``losses.mixup`` on its batch: from its own stream, or one draw for all (as dropout)."""
        if not self.exact_rng:
            return shared_mixup(inputs, targets, self.mixup_alpha) if self.mixed else (inputs, targets)
        for k, m in enumerate(self.members):
            if m.cfg.mixup_alpha > 0:
                with m.rng:
                    inputs[k], targets[k] = mixup(inputs[k], targets[k], m.cfg.mixup_alpha)
        return inputs, targets

    def _dropout(self, x: torch.Tensor, frames_first: bool) -> torch.Tensor:
        """Each member's ``nn.Dropout`` at one site of the model (see ``trials.stacked.Dropout``)."""
        if not self.exact_rng:
            return shared_dropout(x, self.keep_prob)
        noises, shape = [], [x.shape[2], x.shape[1], *x.shape[3:]] if frames_first else list(x.shape[1:])
        for m in self.members:
            p = m.cfg.dropout
            if p == 0:  # F.dropout with p=0 draws nothing and returns its input
                noises.append(torch.ones(x.shape[1:], dtype=x.dtype, device=x.device))
                continue
            with m.rng:
                noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p).div_(1 - p)
            noises.append(noise.transpose(0, 1) if frames_first else noise)
        return x * torch.stack(noises)

    @torch.no_grad()
    def _step(self, grad: torch.Tensor) -> None:
        """Per-member gradient clipping (``clip_grad_norm_``), then torch's single-tensor AdamW, member by row."""
        if self.clipped:
            coef = (self.max_norm / (torch.linalg.vector_norm(grad, dim=1, keepdim=True) + CLIP_EPS)).clamp(max=1.0)
            grad.mul_(torch.where(self.max_norm > 0, coef, torch.ones_like(coef)))
        beta1, beta2 = ADAM_BETAS
        decay, step_size, bias2_sqrt = [], [], []
        for m in self.members:
            step = m.progress["step"] + 1
            decay.append(1 - m.lr * m.cfg.weight_decay)
            step_size.append(-m.lr / (1 - beta1 ** step))
            bias2_sqrt.append((1 - beta2 ** step) ** 0.5)
        decay_t, step_t, bias2_t = torch.tensor([decay, step_size, bias2_sqrt], device=self.device).unsqueeze(2)
        flat = self.stack.flat
        flat.mul_(decay_t)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / bias2_t).add_(ADAM_EPS)
        flat.addcdiv_(self.exp_avg * step_t, denom)

    @torch.no_grad()
    def _evaluate(self, inputs: torch.Tensor, labels: torch.Tensor) -> list[dict[str, float]]:
        """``train.evaluate`` for every member at once: plain loss and top-1/3/5 as fractions."""
        k = len(self.members)
        loss = torch.zeros(k, device=self.device)
        hits = {t: torch.zeros(k, device=self.device) for t in (1, 3, 5)}
        rows = max(1, EVAL_BATCH // k)
        for first in range(0, len(labels), rows):
            x, y = inputs[first:first + rows], labels[first:first + rows]
            with self.autocast:
                logits = self.stack.forward(x, no_dropout).float()
            loss += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none"
                                                      ).view(k, -1).sum(dim=1)
            top = logits.topk(min(5, logits.shape[2]), dim=2).indices
            for t in hits:
                hits[t] += (top[:, :, :t] == y.view(1, -1, 1)).any(dim=2).sum(dim=1)
        n, loss_list, hit_lists = len(labels), loss.tolist(), {t: h.tolist() for t, h in hits.items()}
        return [{"loss": loss_list[i] / n, **{f"top{t}": hit_lists[t][i] / n for t in hits}} for i in range(k)]

    # --- members leaving, checkpoints, reports -----------------------------------------------------------
    def _report_all(self, reports: list[tuple[Member, dict[str, Any]]]) -> None:
        """A report that raises ends that member only (its outcome is the exception): how a driver prunes one."""
        stopped = []
        for m, metrics in reports:
            try:
                m.report(metrics)
            except Exception as exc:  # the caller decides what its own exception means
                self._outcome(m.index, exc)
                stopped.append(m)
        if stopped:
            self._keep([k for k, m in enumerate(self.members) if m not in stopped])

    def _leave(self, finished: list[Member], stop_reason: str) -> None:
        """Members whose run is over: the test split on their best weights, then out of the group."""
        for m in finished:
            model = copy.deepcopy(m.model).to(self.device)
            model.load_state_dict(m.best_state)
            test = evaluate(model, self.data.x_test, self.data.y_test, self.autocast)
            self._outcome(m.index, final_result(m.progress, test, stop_reason, model, self.device,
                                          time.perf_counter() - self.started, self.data))
        if finished:
            self._keep([k for k, m in enumerate(self.members) if m not in finished])

    def _outcome(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self.finished(index, outcome)

    def _keep(self, keep: list[int]) -> None:
        self.members = [self.members[k] for k in keep]
        if not self.members:
            return
        self.stack.keep(keep)
        index = torch.tensor(keep, device=self.device)
        self.exp_avg, self.exp_avg_sq = self.exp_avg[index], self.exp_avg_sq[index]
        self._columns()

    def _save(self, m: Member, k: int) -> None:
        """Member ``k``'s checkpoint, exactly as its own run writes it (``train.save_state``)."""
        m.model.load_state_dict(self.stack.member_state(k))
        offset = 0
        for p in m.model.parameters():
            n = p.numel()
            m.optimizer.state[p] = {
                "step": torch.tensor(float(m.progress["step"]), dtype=torch.float32),
                "exp_avg": self.exp_avg[k, offset:offset + n].view_as(p).cpu().clone(),
                "exp_avg_sq": self.exp_avg_sq[k, offset:offset + n].view_as(p).cpu().clone(),
            }
            offset += n
        for group in m.optimizer.param_groups:
            group["lr"] = m.lr
        with torch.random.fork_rng(devices=self.cuda_devices), m.rng:
            save_state(m.state_path, m.model, m.optimizer, m.progress, m.best_state, m.cfg, self.data.fingerprint)


__all__ = ["group_key", "run_group"]
