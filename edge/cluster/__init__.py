"""``cnscreen batch --engine ray``: screen an archive on a Ray cluster (or Ray on this machine) into a Parquet dataset
folder, with the built-in engine's rows and its exactly-once resume.

The driver lists the inputs once (:mod:`.sources`: a local tree, zip or list file as the built-in engine does, or a
glob on any filesystem pyarrow or fsspec reaches), Ray tasks read, QC and preprocess them and an actor pool of
onnxruntime sessions screens them (:mod:`.pipeline`), and the driver alone writes the rows as Parquet parts with a
manifest of finished keys (:mod:`.parts`), so a killed driver, a lost node or a retried task never leaves an input
twice; :mod:`.run` ties them together (:func:`run_ray_batch`). Ray is imported only when a run starts: it is the
``[cluster]`` extra, and the built-in engine never needs it.
"""

from __future__ import annotations

from cardiacnets.edge.cluster.parts import PartStore
from cardiacnets.edge.cluster.run import ClusterError, ClusterSummary, run_ray_batch
from cardiacnets.edge.cluster.sources import list_inputs

__all__ = ["ClusterError", "ClusterSummary", "PartStore", "list_inputs", "run_ray_batch"]
