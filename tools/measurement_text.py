"""How the measuring tools write what they measured: a duration, and the machine it ran on."""

from __future__ import annotations

import math
import platform

from covid_tutorial.system import cpu_name_and_cores


def format_duration(seconds: float) -> str:
    """``42 s`` under two minutes, else ``2.5 min``; as the README's budget table is written."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def parse_duration(text: str) -> float:
    """The seconds of a ``format_duration`` text."""
    value, unit = text.split()
    return float(value) * {"s": 1, "min": 60}[unit]


def describe_machine(load_average: float | None = None) -> str:
    """``2 CPU cores, Linux x86_64``, and the load average during the run when it was sampled."""
    text = f"{cpu_name_and_cores()[1]} CPU cores, {platform.system()} {platform.machine()}"
    if load_average is not None and not math.isnan(load_average):
        text += f", load average {load_average:.1f} during the run"
    return text
