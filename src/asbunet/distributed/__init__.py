"""Segmentation beyond one machine, on Ray Data (the `ray` extra): `segment_dataset` (`asbunet segment --engine ray`)
and the `map_batches` callable classes it is built on (`SegmentImages`, `SegmentFiles`). docs/scale.md says how to run
it on a cluster. Ray itself is imported only when a pipeline runs."""

from asbunet.distributed.actors import SegmentFiles, SegmentImages
from asbunet.distributed.pipeline import DatasetReport, segment_dataset

__all__ = ["DatasetReport", "SegmentFiles", "SegmentImages", "segment_dataset"]
