import itertools
import math

import pytest

from trials.schedule import lr_at, warmup_steps_for

BASE, MIN = 1e-3, 1e-6


def lr(step, warmup=10, total=110):
    return lr_at(step, base_lr=BASE, min_lr=MIN, warmup_steps=warmup, total_steps=total)


def test_warmup_starts_at_one_percent_and_rises_linearly():
    assert lr(0) == pytest.approx(0.01 * BASE)
    assert lr(5) == pytest.approx(BASE * (0.01 + 0.99 * 0.5))
    assert lr(9) == pytest.approx(BASE * (0.01 + 0.99 * 0.9))


def test_cosine_starts_at_base_halves_midway_and_ends_at_min():
    assert lr(10) == pytest.approx(BASE)
    assert lr(60) == pytest.approx(MIN + (BASE - MIN) * 0.5)
    assert lr(35) == pytest.approx(MIN + (BASE - MIN) * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr(110) == pytest.approx(MIN)
    assert lr(500) == pytest.approx(MIN)  # past the end stays at the floor


def test_no_warmup_is_plain_cosine():
    assert lr(0, warmup=0, total=100) == pytest.approx(BASE)
    assert lr(50, warmup=0, total=100) == pytest.approx(MIN + (BASE - MIN) * 0.5)


def test_schedule_is_monotone_in_each_phase():
    values = [lr(s) for s in range(111)]
    assert all(a < b for a, b in itertools.pairwise(values[:11]))
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_fractional_warmup_epochs_count_in_steps():
    # a warmup of 1.5 epochs at 7 steps per epoch is 10 or 11 optimizer steps, not 0 (per-step stepping)
    assert warmup_steps_for(1.5, 7) == round(10.5)
    assert warmup_steps_for(0, 7) == 0
