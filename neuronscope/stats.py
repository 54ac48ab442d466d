"""Mean, spread and 95% intervals over a handful of seeds (Student t; no scipy needed).

With 3 seeds the t quantile is 4.30, not 1.96: using the normal one would report intervals half as wide as they
are. The gap between a method and the oracle uses Welch's interval (unequal variances, Welch-Satterthwaite df).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# two-sided 95% quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t; a non-integer df is rounded down (conservative)."""
    if not df >= 1:
        return float("nan")
    d = int(math.floor(df))
    keys = sorted(_T975)
    if d > keys[-1]:
        return 1.960
    return _T975[max(k for k in keys if k <= d)]  # the largest tabulated df <= d: conservative


@dataclass(frozen=True)
class Summary:
    mean: float
    sd: float  # sample standard deviation (ddof=1); nan for one value
    n: int
    ci95: float  # half-width of the 95% t interval of the mean

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    n = len(values)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0, float("nan"))
    mean = sum(values) / n
    if n == 1:
        return Summary(mean, float("nan"), 1, float("nan"))
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(mean, sd, n, t975(n - 1) * sd / math.sqrt(n))


def welch_gap(a: Sequence[float], b: Sequence[float]) -> Summary:
    """mean(a) - mean(b) with a Welch 95% half-width; `sd` is the standard error of the difference."""
    sa, sb = summarize(a), summarize(b)
    if sa.n < 2 or sb.n < 2:
        return Summary(sa.mean - sb.mean, float("nan"), min(sa.n, sb.n), float("nan"))
    va, vb = sa.sd ** 2 / sa.n, sb.sd ** 2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Summary(sa.mean - sb.mean, 0.0, min(sa.n, sb.n), 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    return Summary(sa.mean - sb.mean, se, min(sa.n, sb.n), t975(df) * se)


def strongest(runs: Sequence[dict]) -> tuple[float, list[float]]:
    """(lr, per-seed max FS) of the attack learning rate with the highest mean recovery (ties: the lower lr)."""
    by_lr: dict[float, list[float]] = {}
    for r in runs:
        by_lr.setdefault(r["lr"], []).append(r["max_fs"])
    lr = max(by_lr, key=lambda k: (summarize(by_lr[k]).mean, -k))
    return lr, by_lr[lr]
