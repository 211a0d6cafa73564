"""aimc.embed: goal embedders (text and 16-frame clips into one space), selected by name or saved directory.

    >>> from aimc.embed import make_embedder
    >>> emb = make_embedder("runs/small/bundle/embedder")      # or "mineclip", "videotext", "openclip"
    >>> emb.encode_text(["chop a tree"]).shape                 # (1, D)

Names are imported on first use, so `import aimc.embed` (and its configs) does not load torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("EMBED_OFFSET", "WINDOW", "Embedder", "available_embedders", "make_embedder",
                     "register_embedder"), "aimc.embed.base"),
    **dict.fromkeys(("BUNDLED", "EmbedderTrainConfig", "VideoTextConfig"), "aimc.embed.config"),
    **dict.fromkeys(("MineCLIPEmbedder", "convert_mineclip"), "aimc.embed.mineclip"),
    "OpenCLIPEmbedder": "aimc.embed.openclip",
    "VideoTextEmbedder": "aimc.embed.videotext",
    "SentenceTextEncoder": "aimc.embed.text",
    **dict.fromkeys(("CAPTIONS", "NOTHING", "caption_event", "instruction", "paraphrases"), "aimc.embed.captions"),
    **dict.fromkeys(("ClipSet", "load_clips"), "aimc.embed.clips"),
    **dict.fromkeys(("embed_dataset", "evaluate_embedder"), "aimc.embed.run"),
    "train_embedder": "aimc.embed.train",
    "embedder_report": "aimc.embed.metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
