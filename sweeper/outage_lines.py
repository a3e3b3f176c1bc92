"""The console's lines as the storage goes away and comes back during a sweep (:class:`storage.retry.OutagePolicy`
calls them), so a sweep that waits out an outage says why it sits still."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.markup import escape

from sweeper.console import console, count_trials


class OutageLines:
    """What the console says as the storage goes away and comes back. Before the sweep has a searcher (``searcher``
    is None) no trial has started; from then on the lines count its running trials."""

    def __init__(self) -> None:
        self.searcher: Any = None

    def outage(self, since: datetime, reason: str) -> None:
        # none while the final summary reads the study, or between trials: "0 trials still training" said nothing
        running = len(self.searcher.trials) if self.searcher else 0
        training = f"; {count_trials(running)} still training, results wait" if running else ""
        console.print(f"[yellow]storage unreachable[/] since {since:%H:%M:%S}{training}: {escape(reason)}",
                      markup=True)

    def recovered(self, seconds: float) -> None:
        console.print(f"[green]storage back[/] after {seconds:.1f} s", markup=True)
