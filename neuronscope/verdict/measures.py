"""Each analysis turned into `Evidence` against a floor (a model that never saw the forget facts).

Calibrated detectors (the headline rule reads these):
- `visible_evidence`: the forget answers themselves (FS) above the floor's: the model was not unlearned.
- `relearning_evidence`: recovery under a relearning attack above the floor's recovery (Welch interval over seeds).
- `lens_evidence`: logit-lens accuracy at an intermediate layer above the floor's at that layer (the final layer is
  FS itself and is left out). Paired per item when both per-item tables are given, else two independent
  proportions; Bonferroni over the layers tested.

Shown for information (not calibrated: known confounds, docs/verdict.md):
- `paper_rule_evidence`: top-m D+ vs D- (with the P target every attribution shrinks with P, so D+ grows with how
  far P fell, hiding or not);
- `patching_evidence`: forget accuracy after patching the top-m D- neurons back to the base, against random ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from neuronscope.stats import strongest, summarize, welch_gap
from neuronscope.verdict.evidence import TAU, Evidence, classify_gap

Z95 = NormalDist().inv_cdf(0.975)


def _z(k: int) -> float:
    """Two-sided 95% normal quantile with a Bonferroni correction over k tests."""
    return NormalDist().inv_cdf(1 - 0.025 / max(k, 1))


def _prop_se(p: float, n: int) -> float:
    # p(1-p)/n with p kept off 0 and 1 by half an item, so a perfect score still has a width
    p = min(max(p, 0.5 / n), 1 - 0.5 / n)
    return p * (1 - p) / n


def visible_evidence(fs: float, n: int, floor_fs: float, floor_n: int, base_fs: float) -> Evidence:
    """Is the model's forget score still above the floor model's (two independent proportions)?"""
    if not (n and floor_n) or any(not math.isfinite(x) for x in (fs, floor_fs, base_fs)):
        return Evidence("forget answers (FS)", "not run", detail="no forget score for the model or the floor")
    gap = fs - floor_fs
    half = Z95 * math.sqrt(_prop_se(fs, n) + _prop_se(floor_fs, floor_n))
    says = classify_gap(gap, half, base_fs - floor_fs)
    return Evidence("forget answers (FS)", says, fs, floor_fs, (gap - half, gap + half),
                    detail=f"FS {fs:.3f} vs floor {floor_fs:.3f} (base {base_fs:.3f})")


def relearning_evidence(label: str, runs: Sequence[dict[str, Any]], floor_runs: Sequence[dict[str, Any]],
                        base_fs: float, margin: float | None = None) -> Evidence:
    """Recovery (max FS during the attack, strongest lr, per seed) of the model against the floor's.

    `runs` / `floor_runs` are the grid's attack records ({"lr", "seed", "max_fs", ...}). The margin is the base's
    forget score minus the floor's mean recovery (how much there was to hide), unless `margin` is given.
    """
    name = f"relearning ({label})"
    if not runs or not floor_runs:
        return Evidence(name, "not run", detail="no attack on the model or on the floor")
    _, vals = strongest(runs)
    _, floor_vals = strongest(floor_runs)
    g = welch_gap(vals, floor_vals)
    floor_mean = summarize(floor_vals).mean
    if math.isnan(g.ci95):
        return Evidence(name, "undetermined", summarize(vals).mean, floor_mean, None,
                        detail="one seed: no interval (use at least 2 attack seeds)")
    if g.ci95 == 0:  # every seed of both gave one value: a spread of 0 estimates no variance, it is not certainty
        return Evidence(name, "undetermined", summarize(vals).mean, floor_mean, None,
                        detail=f"every seed gave the same recovery ({summarize(vals).mean:.3f} vs floor "
                               f"{floor_mean:.3f}): no spread to build an interval from (more seeds or items)")
    says = classify_gap(g.mean, g.ci95, base_fs - floor_mean if margin is None else margin)
    mean = summarize(vals).mean
    return Evidence(name, says, mean, floor_mean, (g.mean - g.ci95, g.mean + g.ci95),
                    detail=f"recovery {mean:.3f} vs floor {floor_mean:.3f} over {len(vals)} seeds")


def _layer_acc(table: Sequence[dict[str, Any]]) -> dict[int, tuple[float, int]]:
    return {int(r["layer"]): (float(r["accuracy"]), int(r["n"])) for r in table}


def lens_evidence(model: Sequence[dict[str, Any]], floor: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]],
                  model_wins: dict[int, list[float]] | None = None,
                  floor_wins: dict[int, list[float]] | None = None) -> Evidence:
    """Logit-lens accuracy per intermediate layer against the floor's (per-layer summaries: layer, accuracy, n).

    A layer can speak only if the base model itself is above the floor there (otherwise the lens reads nothing at
    that depth, known or not). Present if some such layer is present; absent if all of them are absent.
    With per-item wins ({layer: [win per item]}, same items in the same order) the comparison is paired.
    """
    name = "logit lens (intermediate layers)"
    m, f, b = _layer_acc(model), _layer_acc(floor), _layer_acc(base)
    layers = sorted(set(m) & set(f) & set(b))
    if len(layers) < 2:
        return Evidence(name, "not run", detail="needs the lens of the model, the floor and the base")
    inner = layers[:-1]  # the last layer's lens is the model's own output, i.e. FS
    z = _z(len(inner))
    powered, per_layer = [], []
    for layer in inner:
        (am, nm), (af, nf), (ab, nb) = m[layer], f[layer], b[layer]
        base_half = z * math.sqrt(_prop_se(ab, nb) + _prop_se(af, nf))
        if ab - af - base_half <= 0:
            continue  # the base is not above the floor at this depth: no power here
        powered.append(layer)
        if model_wins is not None and floor_wins is not None and layer in model_wins and layer in floor_wins:
            d = [x - y for x, y in zip(model_wins[layer], floor_wins[layer], strict=True)]
            s = summarize(d)
            half = z * s.sd / math.sqrt(s.n) if s.n > 1 else float("nan")
        else:
            half = z * math.sqrt(_prop_se(am, nm) + _prop_se(af, nf))
        gap = am - af
        per_layer.append((layer, classify_gap(gap, half, ab - af), gap, half, am, af))
    if not powered:
        return Evidence(name, "undetermined", detail="the base is not above the floor at any intermediate layer, "
                                                      "so the lens cannot see the facts there")
    says_all = [p[1] for p in per_layer]
    best = max(per_layer, key=lambda p: p[2] - p[3])  # the layer with the highest lower bound
    if "present" in says_all:
        says = "present"
        best = max((p for p in per_layer if p[1] == "present"), key=lambda p: p[2] - p[3])
    elif all(s == "absent" for s in says_all):
        says = "absent"
    else:
        says = "undetermined"
    layer, _, gap, half, am, af = best
    return Evidence(name, says, am, af, (gap - half, gap + half),
                    detail=f"layer {layer}: {am:.3f} vs floor {af:.3f}; tested layers {', '.join(map(str, powered))}"
                           f" ({'paired' if model_wins is not None else 'unpaired'})")


def paper_rule_evidence(summary: dict[str, Any] | None, target: str = "p", m: int = 100) -> Evidence:
    """The paper's rule from an attribution summary: top-m D- above D+ reads as hidden."""
    name = f"top-{m} D+ vs D- ({'P' if target == 'p' else 'log P'} target)"
    if not summary or f"top{m}_d_plus" not in summary:
        return Evidence(name, "not run", calibrated=False)
    dp, dm = float(summary[f"top{m}_d_plus"]), float(summary[f"top{m}_d_minus"])
    says = "present" if dm > dp else "absent" if dp > dm else "undetermined"
    return Evidence(name, says, dm, dp, calibrated=False,
                    detail=f"D- {dm:.4g} vs D+ {dp:.4g}" + (" (the paper's measure)" if target == "p" else ""))


def patching_evidence(patching: dict[str, Any] | None, n_items: int) -> Evidence:
    """Forget accuracy after patching the top-m D- neurons back to the base, against m random neurons."""
    name = "patching top D- neurons"
    if not patching or "d_minus_accuracy" not in patching or "random_accuracy" not in patching or not n_items:
        return Evidence(name, "not run", calibrated=False)
    a, r = float(patching["d_minus_accuracy"]), float(patching["random_accuracy"])
    span = float(patching["base_accuracy"]) - float(patching["unlearned_accuracy"])
    half = Z95 * math.sqrt(_prop_se(a, n_items) + _prop_se(r, n_items))
    says = classify_gap(a - r, half, span)
    return Evidence(name, says, a, r, (a - r - half, a - r + half), calibrated=False,
                    detail=f"top-{patching.get('m', '?')} D-: {a:.3f} vs random {r:.3f} "
                           f"(base {patching['base_accuracy']:.3f})")


def paper_rule(summary: dict[str, Any] | None, m: int = 100) -> dict[str, Any] | None:
    """The paper's verdict and its two sums, labelled as the paper's measure."""
    if not summary or f"top{m}_d_plus" not in summary:
        return None
    dp, dm = float(summary[f"top{m}_d_plus"]), float(summary[f"top{m}_d_minus"])
    return {"label": "erase" if dp > dm else "hide" if dm > dp else "tie", "d_plus": dp, "d_minus": dm,
            "target": summary.get("target", "p")}


__all__ = ["TAU", "lens_evidence", "paper_rule", "paper_rule_evidence", "patching_evidence", "relearning_evidence",
           "visible_evidence"]
