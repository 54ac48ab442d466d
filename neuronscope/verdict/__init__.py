"""Erase or hide: evidence from each analysis against a floor, and the calibrated headline verdict."""

from neuronscope.verdict.assemble import model_verdict, run_verdicts
from neuronscope.verdict.evidence import TAU, Evidence, Verdict, classify_gap, decide

__all__ = ["TAU", "Evidence", "Verdict", "classify_gap", "decide", "model_verdict", "run_verdicts"]
