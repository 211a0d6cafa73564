"""Episode store, dataset index and collection: what the demonstrator did, on disk, in STEVE-1's layout."""

from aimc.data.index import DatasetIndex, Mixture
from aimc.data.store import FORMAT_VERSION, Episode, EpisodeWriter, list_episodes

__all__ = ["FORMAT_VERSION", "DatasetIndex", "Episode", "EpisodeWriter", "Mixture", "list_episodes"]
