"""Action spaces: MineRL env dicts <-> VPT factored/joint actions, MineDojo MultiDiscrete, Crafter.

They live in the world layer because three stages speak them: the Minecraft world (`aimc.envs.minecraft.world`
turns the policy's joint action into the game's key/camera dict), the contractor converter (`aimc.data`) and the
policy (`aimc.policy.actions` and `aimc.actions` re-export this module, so every older import path still works).
numpy only, no torch.

VPT (``openai/Video-Pre-Training``) uses three representations of one Minecraft action:

* **env** (MineRL ``HumanSurvival``): a dict of 23 ``Discrete(2)`` keys plus ``camera`` = [pitch, yaw] degrees.
* **factored**: ``buttons`` (N, 20) 0/1 in :data:`BUTTONS_ALL` order and ``camera`` (N, 2) mu-law bins 0..10.
* **joint** (what the policy heads predict): ``buttons`` index in 0..8640 (8640 button-group combinations in
  ``itertools.product`` order, with a camera on/off meta action, plus ``inventory``) and ``camera`` index
  ``pitch_bin * 11 + yaw_bin`` in 0..120.

aimc's worlds take one discrete action, so Minecraft episodes and the Minecraft world use the **joint code**
``buttons * 121 + camera`` (0..1,045,560; `joint_code`, `split_joint_code`), whose names are
`JOINT_ACTION_NAMES`.

Everything here is vectorised numpy over a leading batch axis; single actions are accepted too.
Lossy parts (documented in docs/policy.md): ESC / pickItem / swapHands are not modelled; forward+back and
left+right cancel; several hotbar keys keep the highest; sprint+sneak keeps sneak; ``inventory`` drops every
other button and the camera; a camera-off combo forces the null camera; the camera is clipped to +-10 deg and
quantised to 11 mu-law bins.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------- MineRL / VPT
#: The model's factored button order (``lib/actions.py: Buttons.ALL``); order matters.
BUTTONS_ALL: tuple[str, ...] = (
    "attack",
    "back",
    "forward",
    "jump",
    "left",
    "right",
    "sneak",
    "sprint",
    "use",
    "drop",
    "inventory",
    *(f"hotbar.{i}" for i in range(1, 10)),
)
#: MineRL env keys that VPT does not model: dropped env -> agent, always 0 agent -> env.
UNMODELLED_KEYS: tuple[str, ...] = ("ESC", "pickItem", "swapHands")
#: All keys of the MineRL ``HumanSurvival`` action dict (``agent.TARGET_ACTION_SPACE``), camera last.
MINERL_KEYS: tuple[str, ...] = (*sorted(BUTTONS_ALL + UNMODELLED_KEYS), "camera")

#: Mutually exclusive button groups, "none" first, in the order that defines the joint index.
BUTTON_GROUPS: dict[str, tuple[str, ...]] = {
    "hotbar": ("none", *(f"hotbar.{i}" for i in range(1, 10))),
    "fore_back": ("none", "forward", "back"),
    "left_right": ("none", "left", "right"),
    "sprint_sneak": ("none", "sprint", "sneak"),
    "use": ("none", "use"),
    "drop": ("none", "drop"),
    "attack": ("none", "attack"),
    "jump": ("none", "jump"),
    "camera": ("none", "camera"),
}
#: ``itertools.product`` over the groups + the lone "inventory" combination (index 8640).
BUTTON_COMBINATIONS: tuple[Any, ...] = (*itertools.product(*BUTTON_GROUPS.values()), "inventory")
N_BUTTON_COMBOS = len(BUTTON_COMBINATIONS)  # 8641
INVENTORY_BUTTON_IDX = N_BUTTON_COMBOS - 1  # 8640
NULL_BUTTON_IDX = 0

N_CAMERA_BINS = 11
CAMERA_NULL_BIN = N_CAMERA_BINS // 2  # 5
N_CAMERA_COMBOS = N_CAMERA_BINS * N_CAMERA_BINS  # 121
NULL_CAMERA_IDX = CAMERA_NULL_BIN * N_CAMERA_BINS + CAMERA_NULL_BIN  # 60

# Camera quantiser as the VPT agent configures it (class defaults differ: linear, mu=5).
CAMERA_MAXVAL = 10
CAMERA_BINSIZE = 2
CAMERA_MU = 10

_BUTTON_POS = {b: i for i, b in enumerate(BUTTONS_ALL)}
_RADICES = tuple(len(v) for v in BUTTON_GROUPS.values())  # (10, 3, 3, 3, 2, 2, 2, 2, 2)
_STRIDES = tuple(int(np.prod(_RADICES[i + 1 :])) for i in range(len(_RADICES)))


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    to_factored = np.zeros((N_BUTTON_COMBOS, len(BUTTONS_ALL)), dtype=np.int64)
    camera_off = np.zeros(N_BUTTON_COMBOS, dtype=bool)
    for idx, combo in enumerate(BUTTON_COMBINATIONS):
        if combo == "inventory":
            to_factored[idx, _BUTTON_POS["inventory"]] = 1
            continue  # quirk kept from VPT: the inventory combo is not flagged camera-off
        for choice in combo[:-1]:
            if choice != "none":
                to_factored[idx, _BUTTON_POS[choice]] = 1
        camera_off[idx] = combo[-1] != "camera"
    return to_factored, camera_off


#: joint button index -> factored buttons (8641, 20); joint index -> camera meta action off (8641,)
BUTTON_IDX_TO_FACTORED, BUTTON_IDX_CAMERA_OFF = _build_tables()


def discretize_camera(degrees: Any) -> np.ndarray:
    """Degrees -> mu-law bins 0..10 (clip to +-10 deg, mu=10, binsize 2), exactly as VPT's quantiser."""
    xy = np.clip(np.asarray(degrees, dtype=np.float64), -CAMERA_MAXVAL, CAMERA_MAXVAL) / CAMERA_MAXVAL
    v = np.sign(xy) * (np.log(1.0 + CAMERA_MU * np.abs(xy)) / np.log(1.0 + CAMERA_MU)) * CAMERA_MAXVAL
    return np.round((v + CAMERA_MAXVAL) / CAMERA_BINSIZE).astype(np.int64)


def undiscretize_camera(bins: Any) -> np.ndarray:
    """Mu-law bins -> degrees (bin centres: 0, +-0.615, +-1.610, +-3.215, +-5.810, +-10)."""
    xy = (np.asarray(bins, dtype=np.float64) * CAMERA_BINSIZE - CAMERA_MAXVAL) / CAMERA_MAXVAL
    return np.sign(xy) * (1.0 / CAMERA_MU) * ((1.0 + CAMERA_MU) ** np.abs(xy) - 1.0) * CAMERA_MAXVAL


# ------------------------------------------------------------------------------- env dict <-> factored
def _batched_dict(action: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    cam = np.asarray(action["camera"], dtype=np.float64)
    single = cam.ndim == 1
    cam = cam.reshape(-1, 2)
    n = cam.shape[0]
    out = {"camera": cam}
    for k in BUTTONS_ALL:
        v = action.get(k, 0)
        out[k] = np.broadcast_to(np.asarray(v, dtype=np.int64).reshape(-1), (n,))
    return out, single


def env_to_factored(action: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """MineRL env dict (scalars or batched) -> ``{"buttons": (N,20) int64, "camera": (N,2) bins}``.

    Missing button keys count as 0; ESC / pickItem / swapHands are ignored.
    """
    d, _ = _batched_dict(action)
    buttons = np.stack([(d[k] != 0).astype(np.int64) for k in BUTTONS_ALL], axis=-1)
    return {"buttons": buttons, "camera": discretize_camera(d["camera"])}


def factored_to_env(factored: Mapping[str, Any], squeeze: bool = False) -> dict[str, Any]:
    """Factored ``{"buttons": (N,20), "camera": (N,2)}`` -> MineRL env dict with all 24 keys.

    Values are (N,) int64 arrays and camera (N, 2) float64 degrees; ``squeeze=True`` returns python ints
    and a (2,) camera for N == 1.
    """
    buttons = np.asarray(factored["buttons"]).reshape(-1, len(BUTTONS_ALL)).astype(np.int64)
    camera = undiscretize_camera(np.asarray(factored["camera"]).reshape(-1, 2))
    out: dict[str, Any] = {k: np.zeros(buttons.shape[0], dtype=np.int64) for k in UNMODELLED_KEYS}
    for i, k in enumerate(BUTTONS_ALL):
        out[k] = buttons[:, i]
    out["camera"] = camera
    out = {k: out[k] for k in MINERL_KEYS}
    if squeeze:
        if buttons.shape[0] != 1:
            raise ValueError("squeeze=True needs exactly one action")
        out = {k: (v[0] if k == "camera" else int(v[0])) for k, v in out.items()}
    return out


def is_null_factored(factored: Mapping[str, Any]) -> np.ndarray:
    """VPT's null-action filter: all 20 buttons 0 and both camera bins at the null bin; (N,) bool."""
    b = np.asarray(factored["buttons"]).reshape(-1, len(BUTTONS_ALL))
    c = np.asarray(factored["camera"]).reshape(-1, 2)
    return np.all(b == 0, axis=1) & np.all(c == CAMERA_NULL_BIN, axis=1)


# ------------------------------------------------------------------------------- factored <-> joint
def factored_to_joint(factored: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``CameraHierarchicalMapping.from_factored``, vectorised: returns (N,) ``buttons`` and ``camera``.

    forward+back -> neither; left+right -> neither; several hotbar keys -> the highest; sprint+sneak ->
    sneak; camera meta "camera" iff the camera bins differ from (5, 5); ``inventory`` -> 8640 and camera 60.
    """
    b = np.asarray(factored["buttons"]).reshape(-1, len(BUTTONS_ALL)) != 0
    cam = np.asarray(factored["camera"]).reshape(-1, 2).astype(np.int64)
    if cam.min(initial=0) < 0 or cam.max(initial=0) >= N_CAMERA_BINS:
        raise ValueError(f"camera bins must be in 0..{N_CAMERA_BINS - 1}, got {cam.min()}..{cam.max()}")
    p = _BUTTON_POS
    choices = []
    for name, group in BUTTON_GROUPS.items():
        if name == "camera":
            c = np.any(cam != CAMERA_NULL_BIN, axis=1).astype(np.int64)
        else:
            pressed = np.stack([b[:, p[g]] for g in group[1:]], axis=1)
            if name in ("fore_back", "left_right"):
                pressed = pressed & ~np.all(pressed, axis=1, keepdims=True)
            # The later option in the group wins (VPT iterates over pressed keys in group order).
            last = pressed.shape[1] - np.argmax(pressed[:, ::-1], axis=1)
            c = np.where(pressed.any(axis=1), last, 0)
        choices.append(c)
    joint = sum(c * s for c, s in zip(choices, _STRIDES, strict=True))
    camera = cam[:, 0] * N_CAMERA_BINS + cam[:, 1]
    inv = b[:, p["inventory"]]
    joint = np.where(inv, INVENTORY_BUTTON_IDX, joint).astype(np.int64)
    camera = np.where(inv, NULL_CAMERA_IDX, camera).astype(np.int64)
    return {"buttons": joint, "camera": camera}


def joint_to_factored(buttons: Any, camera: Any) -> dict[str, np.ndarray]:
    """``CameraHierarchicalMapping.to_factored``: joint indices (N,) -> factored; camera-off forces (5, 5)."""
    bi = np.asarray(buttons, dtype=np.int64).reshape(-1)
    ci = np.asarray(camera, dtype=np.int64).reshape(-1)
    if bi.min(initial=0) < 0 or bi.max(initial=0) >= N_BUTTON_COMBOS:
        raise ValueError(f"button index out of range 0..{N_BUTTON_COMBOS - 1}")
    if ci.min(initial=0) < 0 or ci.max(initial=0) >= N_CAMERA_COMBOS:
        raise ValueError(f"camera index out of range 0..{N_CAMERA_COMBOS - 1}")
    fb = BUTTON_IDX_TO_FACTORED[bi].copy()
    cam = np.stack([ci // N_CAMERA_BINS, ci % N_CAMERA_BINS], axis=1)
    cam[BUTTON_IDX_CAMERA_OFF[bi]] = CAMERA_NULL_BIN
    return {"buttons": fb, "camera": cam}


def env_to_joint(action: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """MineRL env dict -> joint ``{"buttons": (N,), "camera": (N,)}`` (the BC training targets)."""
    return factored_to_joint(env_to_factored(action))


def joint_to_env(buttons: Any, camera: Any, squeeze: bool = False) -> dict[str, Any]:
    """Joint indices -> MineRL env dict (what the VPT agent sends to the env)."""
    return factored_to_env(joint_to_factored(buttons, camera), squeeze=squeeze)


def null_env_action() -> dict[str, Any]:
    """The MineRL no-op: every key 0, camera [0, 0]."""
    return {k: (np.zeros(2) if k == "camera" else 0) for k in MINERL_KEYS}


def describe_joint(buttons: int, camera: int) -> str:
    """Human-readable joint action, e.g. ``forward+attack+jump cam(8,4)``."""
    keys = [k for k in _combo_keys(buttons) if k != "camera"]
    f = joint_to_factored(buttons, camera)
    cam = f["camera"][0]
    parts = "+".join(keys) or "noop"
    return parts if tuple(cam) == (CAMERA_NULL_BIN, CAMERA_NULL_BIN) else f"{parts} cam({cam[0]},{cam[1]})"


# ------------------------------------------------------------------------------------------ joint code
N_JOINT_CODES = N_BUTTON_COMBOS * N_CAMERA_COMBOS  # 1,045,561
NULL_JOINT_CODE = NULL_BUTTON_IDX * N_CAMERA_COMBOS + NULL_CAMERA_IDX  # 60


def joint_code(buttons: Any, camera: Any) -> np.ndarray:
    """The policy's two head indices -> one code ``buttons * 121 + camera`` per action, (N,) int64.

    One integer per action is what aimc's worlds (`Discrete` action spaces), episode stores and actors pass
    around; `split_joint_code` gives the two heads back."""
    b = np.asarray(buttons, dtype=np.int64).reshape(-1)
    c = np.asarray(camera, dtype=np.int64).reshape(-1)
    if b.min(initial=0) < 0 or b.max(initial=0) >= N_BUTTON_COMBOS:
        raise ValueError(f"button index out of range 0..{N_BUTTON_COMBOS - 1}")
    if c.min(initial=0) < 0 or c.max(initial=0) >= N_CAMERA_COMBOS:
        raise ValueError(f"camera index out of range 0..{N_CAMERA_COMBOS - 1}")
    return b * N_CAMERA_COMBOS + c


def split_joint_code(code: Any) -> tuple[np.ndarray, np.ndarray]:
    """Joint codes -> (buttons (N,), camera (N,)) head indices; a code outside 0..1,045,560 raises ValueError."""
    c = np.asarray(code, dtype=np.int64).reshape(-1)
    if c.min(initial=0) < 0 or c.max(initial=0) >= N_JOINT_CODES:
        raise ValueError(f"joint action code out of range 0..{N_JOINT_CODES - 1}")
    return c // N_CAMERA_COMBOS, c % N_CAMERA_COMBOS


def env_to_joint_code(action: Mapping[str, Any]) -> np.ndarray:
    """MineRL env dict (scalars or batched) -> joint codes (N,): how recordings and game actions are stored."""
    j = env_to_joint(action)
    return joint_code(j["buttons"], j["camera"])


def joint_code_to_env(code: Any, squeeze: bool = False) -> dict[str, Any]:
    """Joint codes -> the MineRL env dict the game executes (all 24 keys; see `factored_to_env` for shapes)."""
    buttons, camera = split_joint_code(code)
    return joint_to_env(buttons, camera, squeeze=squeeze)


def _combo_keys(buttons: int) -> list[str]:
    """The choices of button combination `buttons` that are not "none" (the camera meta action included)."""
    combo = BUTTON_COMBINATIONS[int(buttons)]
    return ["inventory"] if combo == "inventory" else [c for c in combo if c != "none"]


class JointActionNames(Sequence[str]):
    """The name of every joint code, made when asked for: ``<buttons>|cam(<pitch bin>,<yaw bin>)``, e.g.
    ``forward+attack+camera|cam(8,4)`` or ``noop|cam(5,5)``.

    The button part lists the combination's choices, its camera meta action ("camera") included, so all
    1,045,561 names are distinct; the camera bins are the raw head output, which the game ignores when the
    combination has no "camera" (`joint_to_factored`). A million strings would cost about 100 MB held in a
    tuple, so the Minecraft world declares this sequence as its `action_names` instead."""

    def __len__(self) -> int:
        return N_JOINT_CODES

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(N_JOINT_CODES))]
        i = int(index)
        if i < 0:
            i += N_JOINT_CODES
        if not 0 <= i < N_JOINT_CODES:
            raise IndexError(f"joint action code {index} out of range 0..{N_JOINT_CODES - 1}")
        buttons, camera = divmod(i, N_CAMERA_COMBOS)
        pitch, yaw = divmod(camera, N_CAMERA_BINS)
        return f"{'+'.join(_combo_keys(buttons)) or 'noop'}|cam({pitch},{yaw})"

    def index(self, name: Any, start: int = 0, stop: Any = None) -> int:
        """The joint code named `name` (parsed, not searched); ValueError if no code has that name."""
        code = _JOINT_NAME_INDEX.code(name)
        if code is None or not start <= code < (N_JOINT_CODES if stop is None else stop):
            raise ValueError(f"{name!r} is not a joint action name")
        return code

    def __contains__(self, name: object) -> bool:
        return _JOINT_NAME_INDEX.code(name) is not None

    def __repr__(self) -> str:
        return f"JointActionNames({N_JOINT_CODES} names: {self[0]!r}, ..., {self[-1]!r})"


class _JointNameIndex:
    """Button part of a name -> button index, built on first use (8641 entries)."""

    def __init__(self) -> None:
        self._buttons: dict[str, int] | None = None

    def code(self, name: object) -> int | None:
        if not isinstance(name, str) or "|cam(" not in name or not name.endswith(")"):
            return None
        if self._buttons is None:
            self._buttons = {"+".join(_combo_keys(b)) or "noop": b for b in range(N_BUTTON_COMBOS)}
        part, _, cam = name.partition("|cam(")
        bins = cam[:-1].split(",")
        buttons = self._buttons.get(part)
        if buttons is None or len(bins) != 2 or not all(x.isdigit() for x in bins):
            return None
        pitch, yaw = int(bins[0]), int(bins[1])
        if pitch >= N_CAMERA_BINS or yaw >= N_CAMERA_BINS or f"{pitch},{yaw}" != cam[:-1]:
            return None
        return buttons * N_CAMERA_COMBOS + pitch * N_CAMERA_BINS + yaw


_JOINT_NAME_INDEX = _JointNameIndex()
JOINT_ACTION_NAMES = JointActionNames()
"""Names of the joint codes in code order: the Minecraft world's `action_names`."""


# -------------------------------------------------------------------------------------------- MineDojo
#: MineDojo's ``ARNNWrapper`` action space with the default ``cam_interval=15``.
MINEDOJO_NVEC: tuple[int, ...] = (3, 3, 4, 25, 25, 8, 244, 36)
MINEDOJO_NOOP: tuple[int, ...] = (0, 0, 0, 12, 12, 0, 0, 0)
MINEDOJO_FUNCTIONAL = ("noop", "use", "drop", "attack", "craft", "equip", "place", "destroy")


def _minedojo_cam_center(cam_interval: float) -> int:
    return (int(np.ceil(360 / cam_interval)) + 1) // 2


def minedojo_to_env(
    action: Sequence[int], cam_interval: float = 15.0, strict: bool = False
) -> dict[str, Any]:
    """MineDojo ``MultiDiscrete([3,3,4,25,25,8,244,36])`` -> MineRL env dict (one action).

    Mapped: movement, jump/sneak/sprint, camera ((bin - 12) * 15 deg), use/drop/attack, and ``equip`` of
    a hotbar slot 0..8 -> ``hotbar.{slot+1}``. Not representable in MineRL's human action space: craft,
    place, destroy and equip of slots 9..35; they become a no-op (or raise ``ValueError`` if ``strict``).
    """
    a = [int(x) for x in action]
    if len(a) != len(MINEDOJO_NVEC):
        raise ValueError(f"MineDojo action must have {len(MINEDOJO_NVEC)} entries, got {len(a)}")
    center = _minedojo_cam_center(cam_interval)
    n_cam = 2 * center + 1
    nvec = (*MINEDOJO_NVEC[:3], n_cam, n_cam, *MINEDOJO_NVEC[5:])
    for i, (v, n) in enumerate(zip(a, nvec, strict=True)):
        if not 0 <= v < n:
            raise ValueError(f"MineDojo action[{i}] = {v} outside 0..{n - 1}")
    out = null_env_action()
    out["forward"], out["back"] = int(a[0] == 1), int(a[0] == 2)
    out["left"], out["right"] = int(a[1] == 1), int(a[1] == 2)
    out["jump"], out["sneak"], out["sprint"] = int(a[2] == 1), int(a[2] == 2), int(a[2] == 3)
    out["camera"] = np.array(
        [(a[3] - center) * cam_interval, (a[4] - center) * cam_interval], dtype=np.float64
    )
    fn = MINEDOJO_FUNCTIONAL[a[5]]
    if fn in ("use", "drop", "attack"):
        out[fn] = 1
    elif fn == "equip" and a[7] < 9:
        out[f"hotbar.{a[7] + 1}"] = 1
    elif fn != "noop" and strict:
        raise ValueError(
            f"MineDojo functional action {fn!r} (arg {a[6]}, slot {a[7]}) has no MineRL equivalent"
        )
    return out


def env_to_minedojo(action: Mapping[str, Any], cam_interval: float = 15.0) -> np.ndarray:
    """MineRL env dict (one action) -> MineDojo MultiDiscrete (8,) int64. Lossy where MineDojo is exclusive:

    forward+back / left+right cancel (as in VPT); jump > sneak > sprint; attack > use > drop > hotbar
    (hotbar.N -> equip slot N-1, highest N wins); camera rounded to the nearest ``cam_interval`` degrees and
    clipped to +-180; inventory / ESC / pickItem / swapHands are dropped.
    """

    def g(k: str) -> bool:
        return bool(np.asarray(action.get(k, 0)).reshape(-1)[0])

    center = _minedojo_cam_center(cam_interval)
    out = np.array(MINEDOJO_NOOP, dtype=np.int64)
    out[3] = out[4] = center
    fwd, back = g("forward"), g("back")
    out[0] = 1 if fwd and not back else 2 if back and not fwd else 0
    left, right = g("left"), g("right")
    out[1] = 1 if left and not right else 2 if right and not left else 0
    out[2] = 1 if g("jump") else 2 if g("sneak") else 3 if g("sprint") else 0
    cam = np.asarray(action.get("camera", (0.0, 0.0)), dtype=np.float64).reshape(-1)[:2]
    bins = np.clip(np.round(cam / cam_interval).astype(np.int64) + center, 0, 2 * center)
    out[3], out[4] = bins
    hot = [i for i in range(1, 10) if g(f"hotbar.{i}")]
    if g("attack"):
        out[5] = 3
    elif g("use"):
        out[5] = 1
    elif g("drop"):
        out[5] = 2
    elif hot:
        out[5], out[7] = 5, hot[-1] - 1
    return out


# --------------------------------------------------------------------------------------------- Crafter
#: Crafter's 17 discrete actions in ``crafter.constants.actions`` order (index = action id).
CRAFTER_ACTIONS: tuple[str, ...] = (
    "noop",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "do",
    "sleep",
    "place_stone",
    "place_table",
    "place_furnace",
    "place_plant",
    "make_wood_pickaxe",
    "make_stone_pickaxe",
    "make_iron_pickaxe",
    "make_wood_sword",
    "make_stone_sword",
    "make_iron_sword",
)
N_CRAFTER_ACTIONS = len(CRAFTER_ACTIONS)
CRAFTER_NOOP = 0


def crafter_action_index(name: str) -> int:
    """Action name -> id; an unknown name raises ValueError listing the valid ones."""
    try:
        return CRAFTER_ACTIONS.index(name)
    except ValueError:
        raise ValueError(f"unknown Crafter action {name!r}; valid: {', '.join(CRAFTER_ACTIONS)}") from None


__all__ = [
    "BUTTONS_ALL",
    "BUTTON_IDX_CAMERA_OFF",
    "BUTTON_IDX_TO_FACTORED",
    "BUTTON_COMBINATIONS",
    "BUTTON_GROUPS",
    "CAMERA_NULL_BIN",
    "CRAFTER_ACTIONS",
    "CRAFTER_NOOP",
    "CAMERA_BINSIZE",
    "CAMERA_MAXVAL",
    "CAMERA_MU",
    "INVENTORY_BUTTON_IDX",
    "JOINT_ACTION_NAMES",
    "JointActionNames",
    "MINEDOJO_NOOP",
    "MINEDOJO_NVEC",
    "MINERL_KEYS",
    "NULL_BUTTON_IDX",
    "NULL_CAMERA_IDX",
    "NULL_JOINT_CODE",
    "N_BUTTON_COMBOS",
    "N_CAMERA_BINS",
    "N_CAMERA_COMBOS",
    "N_CRAFTER_ACTIONS",
    "N_JOINT_CODES",
    "UNMODELLED_KEYS",
    "crafter_action_index",
    "describe_joint",
    "discretize_camera",
    "env_to_factored",
    "env_to_joint",
    "env_to_joint_code",
    "env_to_minedojo",
    "factored_to_env",
    "factored_to_joint",
    "is_null_factored",
    "joint_code",
    "joint_code_to_env",
    "joint_to_env",
    "joint_to_factored",
    "minedojo_to_env",
    "null_env_action",
    "split_joint_code",
    "undiscretize_camera",
]
