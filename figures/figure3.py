"""Paper Figure 3: cumulative D+ (dotted) and D- (solid) over the top-m neurons, per method.

Usage: python figures/figure3.py RUNDIR [OUTDIR]   (RUNDIR from `neuronscope run` or `neuronscope demo`)
"""

from _write import write_figure

if __name__ == "__main__":
    write_figure("figure3")
