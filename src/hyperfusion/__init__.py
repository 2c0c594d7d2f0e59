"""hyperfusion: fuse tabular clinical data with 3D medical images through hypernetworks.

A hypernetwork maps each patient's tabular record to the weights of chosen layers of a 3D CNN
(HyperFusion, Duenias et al.). Subpackages, from the bottom up: ``nn`` (hyper layers, conditioning
blocks), ``models`` (the paper's networks and baselines), ``data`` (cohort manifests, NIfTI, tabular
preprocessing, partitions), ``simulate`` (built-in simulated cohorts), ``evaluation`` and ``training``.
"""

__version__ = "0.1.0"
