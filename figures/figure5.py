"""Paper Figure 5: module x layer heatmaps of positive and negative influence variation, per method.

Usage: python figures/figure5.py RUNDIR [OUTDIR]   (RUNDIR from `neuronscope run` or `neuronscope demo`)
"""

from _write import write_figure

if __name__ == "__main__":
    write_figure("figure5")
