"""Paper Figure 4: logit-lens accuracy per layer, before vs after unlearning.

Usage: python figures/figure4.py RUNDIR [OUTDIR]   (RUNDIR from `neuronscope run` or `neuronscope demo`)
"""

from _write import write_figure

if __name__ == "__main__":
    write_figure("figure4")
