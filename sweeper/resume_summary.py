"""The lines a resumed sweep starts with: what it keeps, what it carries on (from which checkpoint) or stops, and
what another live driver still runs, so that a resume never silently drops or re-runs a trial."""

from __future__ import annotations

from pathlib import Path

import optuna

from storage.resume import last_epoch
from sweeper.console import console, count_trials
from sweeper.folders import kept_checkpoint


def print_resume_summary(study: optuna.Study, orphans: list[optuna.trial.FrozenTrial], checkpoints: Path, *,
                         stopping: bool = False, due: list[optuna.trial.FrozenTrial] | None = None) -> None:
    """What a resumed sweep keeps, carries on (or, ``stopping`` at a target met, stops but for those whose result
    is ``due``) and leaves to another live driver."""
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    states = {s: sum(t.state.name == s for t in finished) for s in ("COMPLETE", "PRUNED", "FAIL")}
    kept = ", ".join(f"{n} {state}" for state, n in states.items() if n)
    n = len(finished)
    console.print(f"kept {n} finished trial{'s' * (n != 1)} ({kept})" if finished else "no finished trials yet")
    if orphans and stopping:
        if due:
            console.print(f"carrying on {count_trials(len(due))} whose driver is gone after the last epoch, for "
                          "the final metrics only: " + ", ".join(f"#{t.number}" for t in due))
        if stopped := [t for t in orphans if t not in (due or [])]:
            console.print(f"stopping {count_trials(len(stopped))} whose driver is gone, as the sweep stops at its "
                          "target: " + ", ".join(f"#{t.number} (epoch {last_epoch(t)} recorded)" if last_epoch(t)
                                            else f"#{t.number} (no epoch recorded)" for t in stopped))
    elif orphans:
        saved = {t.number for t in orphans if kept_checkpoint(str(checkpoints), t.number)}
        # the study knows the last epoch reported; the checkpoint may be older (checkpoint_every) or newer (an outage)
        console.print(f"carrying on {count_trials(len(orphans))} whose driver is gone, "
                      f"{'from its' if len(orphans) == 1 else 'each from its'} last checkpoint: "
                      + ", ".join(f"#{t.number} (epoch {last_epoch(t)} recorded)" if t.number in saved else
                                  f"#{t.number} (none in {checkpoints}: from the start)" for t in orphans))
    carried = {t.number for t in orphans}
    others = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and t.number not in carried]
    if others:
        one = len(others) == 1
        console.print(f"{count_trials(len(others))} {'is' if one else 'are'} running in another live driver and "
                      f"{'counts' if one else 'count'} against the budget: "
                      + ", ".join(f"#{t.number}" for t in others))
