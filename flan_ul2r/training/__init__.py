"""The code that joins data and models: typed configs, the run, the train step, checkpoints, metrics.

`flan_ul2r.training.partitioning` is the old name of `flan_ul2r.partitioning` (meshes and shardings, now
below decoding so inference can use it too); the alias keeps users' scripts importing it working.
"""
import sys

from flan_ul2r import partitioning

sys.modules[f"{__name__}.partitioning"] = partitioning
