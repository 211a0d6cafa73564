"""Key constants shared by envs, data, training and eval, so no stage hard-codes another's strings."""

POV = "pov"  # obs["pov"]: uint8 (H, W, 3)
EVENTS = "events"  # info["events"]: list[str] of what happened this step
INVENTORY = "inventory"
ACHIEVEMENTS = "achievements"
PLAYER_POS = "player_pos"
DAYLIGHT = "daylight"
HEALTH = "health"
LABEL = "label"  # info["label"]: the DART label (expert action) when it differs from the executed action
NO_LABEL = "no_label"  # info["no_label"]: True where the step has no action target (masked out of BC's loss)
MASKED_LABELS = "masked_labels"  # metadata flag: some steps carry NO_LABEL (so datasets read that field)

# Episode store file names (format version 1).
FRAMES_FILE = "frames.mp4"
ACTIONS_FILE = "actions.npy"
EVENTS_FILE = "events.jsonl"
INFOS_FILE = "infos.jsonl"
METADATA_FILE = "metadata.json"
LEN_FILE = "len.txt"
EMBEDS_PREFIX = "embeds_"  # embeds_<name>.npy (T, D) float16 + embeds_<name>_mask.npy (T,) bool
