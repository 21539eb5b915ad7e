"""Where the time of a dataset run goes: seconds per stage, summed over pairs (``--timings``)."""
import time
from contextlib import contextmanager

__all__ = ["STAGES", "StageTimer"]

#: The stages of a pair, in the order they run.
STAGES = ("read", "masks", "kernels", "synthesis", "encode", "write", "manifest")


class StageTimer:
    """Wall-clock seconds per stage, summed, with the number of pairs they cover (a disabled
    timer's ``stage`` context does not read the clock: it costs nothing measurable).

    Examples
    --------
    >>> timer = StageTimer()
    >>> with timer.stage("read"):
    ...     pass
    >>> timer.pairs += 1
    >>> sorted(timer.seconds)
    ['read']
    >>> other = StageTimer()
    >>> other.add({"read": 0.5, "encode": 1.0}, pairs=2)
    >>> round(other.mean_ms()["encode"], 1)
    500.0
    """

    def __init__(self, enabled=True):
        self.enabled = bool(enabled)
        self.seconds = {}
        self.pairs = 0

    @contextmanager
    def stage(self, name):
        start = time.perf_counter() if self.enabled else None
        try:
            yield
        finally:
            if start is not None:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def take(self):
        """The seconds recorded since the last ``take`` (then cleared)."""
        seconds, self.seconds = self.seconds, {}
        return seconds

    def add(self, seconds, pairs=1):
        """Add another timer's ``seconds`` (a worker's, one pair's) covering ``pairs`` pairs."""
        if not self.enabled:
            return
        for name, value in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + float(value)
        self.pairs += pairs

    def mean_ms(self):
        """Mean milliseconds a pair per stage, in :data:`STAGES` order (stages never run: 0)."""
        names = list(STAGES) + sorted(set(self.seconds) - set(STAGES))
        return {name: 1e3 * self.seconds.get(name, 0.0) / max(self.pairs, 1) for name in names}

    def report(self):
        """One line: ``mean ms a pair over N pairs: read 1.2, masks 0.8, ... (sum S)``."""
        means = self.mean_ms()
        stages = ", ".join(f"{name} {value:.1f}" for name, value in means.items())
        return f"mean ms a pair over {self.pairs} pairs: {stages} (sum {sum(means.values()):.1f})"
