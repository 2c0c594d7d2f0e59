"""Built-in simulated cohorts: NIfTI volumes warped from a real brain template plus ADNI-/UK Biobank-like
tables, written to disk exactly as a user's cohort (the data layer cannot tell them apart)."""

from hyperfusion.simulate.api import simulate_ad, simulate_brain_age
from hyperfusion.simulate.render import Nuisance

__all__ = ["Nuisance", "simulate_ad", "simulate_brain_age"]
