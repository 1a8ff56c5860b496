"""Statistics of counts shared by the data description and the method: the Wilson interval of a
proportion, and the share of trusted rows whose given label is wrong (what `--describe` reports
and `--noise_ratio auto` uses where someone checked rows by hand)."""

from __future__ import annotations

import numpy as np


def wilson_interval(wrong: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion wrong/total (95% by default); (0, 1) for none."""
    if total == 0:
        return 0.0, 1.0
    p = wrong / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def trusted_noise_rate(given: np.ndarray, verified: np.ndarray) -> dict:
    """The share of trusted rows whose given label is not the verified one, with its 95% interval.
    given, verified [T] -> {"rows", "wrong", "rate", "interval"} (rate None without rows)."""
    given, verified = np.asarray(given), np.asarray(verified)
    wrong = int((given != verified).sum())
    return {"rows": len(given), "wrong": wrong, "rate": wrong / len(given) if len(given) else None,
            "interval": list(wilson_interval(wrong, len(given)))}
