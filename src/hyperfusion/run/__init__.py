"""hyperfusion.run: the protocol — plan a comparison's units, keep its run directory, execute, report.

Everything that reads or writes a run directory goes through :mod:`hyperfusion.run.store`; one model is trained
by :mod:`hyperfusion.engine`.
"""
