"""hyperfusion: fuse tabular clinical data with 3D medical images through hypernetworks.

A hypernetwork maps each patient's tabular record to the weights of chosen layers of a 3D CNN
(HyperFusion, Duenias et al.). Subpackages, from the bottom up: ``nn`` (hyper layers, conditioning
blocks), ``models`` (the paper's networks and baselines), ``data`` (cohort manifests, NIfTI, tabular
preprocessing, partitions), ``simulate`` (built-in simulated cohorts), ``evaluation`` and ``training``.
"""

__version__ = "0.1.0"


def load_model(run_dir, method, split_seed, fold, *, version=0):
    """One trained unit of a finished run (``hyperfusion.run.portable.load_model``), imported on first use."""
    from hyperfusion.run.portable import load_model as load

    return load(run_dir, method, split_seed, fold, version=version)


def load_ensemble(run_dir, method, split_seed=None):
    """One method's ensemble of a finished run (``hyperfusion.run.portable.load_ensemble``), imported on first use."""
    from hyperfusion.run.portable import load_ensemble as load

    return load(run_dir, method, split_seed)
