"""Paper Figure 2: forget accuracy recovered by harmful and benign relearning, per method (and trajectories).

Usage: python figures/figure2.py RUNDIR [OUTDIR]   (RUNDIR from `neuronscope run` or `neuronscope demo`)
"""

from _write import write_figure

if __name__ == "__main__":
    write_figure("figure2")
