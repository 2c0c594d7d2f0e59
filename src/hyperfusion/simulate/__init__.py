"""Built-in simulated cohorts: NIfTI volumes warped from a real brain template plus ADNI-/UK Biobank-like
tables, written to disk exactly as a user's cohort (the data layer cannot tell them apart).

The names below are imported on first use (PEP 562), so importing ``hyperfusion.simulate.command`` for
``hyperfusion --help`` does not pull in torch and the template code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperfusion.simulate.api import simulate_ad, simulate_brain_age
    from hyperfusion.simulate.render import Nuisance

#: public name -> the module that defines it
_LAZY = {
    "Nuisance": "hyperfusion.simulate.render",
    "simulate_ad": "hyperfusion.simulate.api",
    "simulate_brain_age": "hyperfusion.simulate.api",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = ["Nuisance", "simulate_ad", "simulate_brain_age"]
