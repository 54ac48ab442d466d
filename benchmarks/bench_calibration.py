"""Cost of the calibration (every ground-truth model and every analysis) relative to one demo unlearning run.

    .venv/bin/python benchmarks/bench_calibration.py [--size full|small] [--method gd] [--threads 1]

Measured in one process: first one unlearning run of `--method` with the demo's settings (lr 1e-4, up to 500
steps, stopping at chance) on a base trained with the calibration's recipe (training not timed), then the whole
calibration of that size. Prints both wall times and their ratio; absolute times on a shared machine vary
several-fold, the ratio much less.
"""

from __future__ import annotations

import argparse
import time

import torch

from neuronscope.base_model import train_base
from neuronscope.data.world import build_world
from neuronscope.unlearn import UnlearnConfig, unlearn
from neuronscope.verdict.calibration import CalibrationConfig, calibrate, small_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "small"), default="full")
    ap.add_argument("--method", default="gd")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = CalibrationConfig() if args.size == "full" else small_config()
    ds = build_world(cfg.world)
    base = train_base(ds, cfg.base)
    lr = 1e-4 if args.size == "full" else 1e-3  # the demo's (and the small profile's) unlearning rate
    t0 = time.perf_counter()
    result = unlearn(base.model.clone(), ds, args.method, UnlearnConfig(lr=lr, max_steps=500))
    t_unlearn = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = calibrate(cfg, ds=ds)
    t_cal = time.perf_counter() - t0
    print(f"{args.size} calibration world: {len(ds.items('forget'))} forget questions, "
          f"{base.model.n_params:,} parameters")
    print(f"one {args.method} unlearning run   {t_unlearn:8.1f} s  ({result.steps} steps, reached {result.reached})")
    print(f"calibration                {t_cal:8.1f} s  (stages: {cal.seconds})")
    print(f"ratio calibration / unlearning run: {t_cal / t_unlearn:.1f}")


if __name__ == "__main__":
    main()
