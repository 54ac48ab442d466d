"""Paper Figure 6: attribution distributions of original, unlearned and attacked models, and their correlation.

Usage: python figures/figure6.py RUNDIR [OUTDIR]   (RUNDIR from `neuronscope run` or `neuronscope demo`)
"""

from _write import write_figure

if __name__ == "__main__":
    write_figure("figure6")
