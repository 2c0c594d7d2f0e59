"""Studies: a grid of run configurations (cohorts × settings), each cell an ordinary run, and one summary."""

from hyperfusion.study.grid import Cell, Study, load_study, study_from_dict
from hyperfusion.study.runner import run_study

__all__ = ["Cell", "Study", "load_study", "run_study", "study_from_dict"]
