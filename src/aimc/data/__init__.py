"""Episode store, dataset index and collection: what the demonstrator did, on disk, in STEVE-1's layout.

Names are imported on first use: the training windows (`SegmentDataset`, ...) import torch, the store does not.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("FORMAT_VERSION", "Episode", "EpisodeWriter", "list_episodes"), "aimc.data.store"),
    **dict.fromkeys(("DatasetIndex", "Mixture", "Skipped"), "aimc.data.index"),
    "SegmentConfig": "aimc.data.config",
    "CollectConfig": "aimc.data.collect",
    **dict.fromkeys(("FrameCache", "SegmentDataset", "SegmentSampler", "build_segment_index", "collate_segments"),
                    "aimc.data.dataset"),
    "relabelled_goals": "aimc.data.relabel",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
