"""Load and save VPT / STEVE-1 policies: official ``.model`` + ``.weights``, ``steve1.weights``, aimc dirs.

* ``.model`` (a pickle of nested dicts) is read with :class:`RestrictedUnpickler`: only plain containers
  and scalars are built; a few known-inert library types that appear in real files (gym/gym3 spaces,
  numpy dtypes/scalars) become inert stand-ins that are never called; any other global (``os.system``,
  ``builtins.eval``, ...) is refused with :class:`~aimc.core.errors.CheckpointError` before anything runs.
* ``.weights`` / ``steve1.weights`` go through ``torch.load(weights_only=True)``.
* The architecture is inferred from tensor shapes; the ``.model`` supplies the image size and the head
  temperature and is cross-checked against the weights.
* Loading is always strict: the error names every missing, unexpected and mis-shaped key.
* aimc format: ``save_pretrained(policy, dir)`` writes ``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aimc.core.checkpoint import state_diff
from aimc.core.errors import CheckpointError, ConfigError
from aimc.policy.vpt.config import VPTConfig, preset_name
from aimc.policy.vpt.model import VPTPolicy

FORMAT_NAME = "aimc.policy.vpt"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
KNOWN_PREFIXES = ("module.policy.", "policy.", "module.")
DEFAULT_TEMPERATURE = 2.0  # VPT agent.py default, used when no .model is given


# --------------------------------------------------------------------------------------- restricted pickle
class InertObject:
    """Stand-in for a known library object inside a ``.model`` (e.g. a gym3 action space). Never executes."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


_INERT_MODULE_ROOTS = ("gym3", "gym", "gymnasium", "minerl")
_NUMERIC_DTYPE_KINDS = set("biufc")
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle referenced something other than plain data."""


def _codecs_encode(text: Any, encoding: str = "latin1") -> bytes:
    """How protocol-2 pickles written by Python 3 store ``bytes``; only the latin-1 form is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise RefusedGlobal("_codecs.encode with unexpected arguments")
    return text.encode("latin-1")


class _NumpyDtype(InertObject):
    qualname = "numpy.dtype"

    def numpy(self) -> Any:
        import numpy as np

        spec = self.args[0] if self.args else None
        if not isinstance(spec, str):
            raise RefusedGlobal("numpy dtype with a non-string spec")
        dt = np.dtype(spec)
        if dt.kind not in _NUMERIC_DTYPE_KINDS:
            raise RefusedGlobal(f"numpy dtype {spec!r} is not a plain numeric type")
        return dt


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy scalar -> the equivalent Python scalar, decoded from raw bytes by aimc (numpy is not called)."""
    import numpy as np

    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes | bytearray):
        raise RefusedGlobal("unsupported numpy scalar encoding")
    arr = np.frombuffer(bytes(data), dtype=dtype.numpy(), count=1)
    return arr[0].item()


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, InertObject):
        return cls()
    raise RefusedGlobal("copyreg._reconstructor of a non-inert class")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only containers/scalars (+ inert stand-ins); refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[key]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "dtype":
                return _NumpyDtype
            if name == "scalar":
                return _numpy_scalar
        if key == ("copyreg", "_reconstructor"):
            return _copyreg_reconstructor
        if key == ("_codecs", "encode"):
            return _codecs_encode
        if module.split(".")[0] in _INERT_MODULE_ROOTS and name.replace("_", "").isalnum():
            return type(name, (InertObject,), {"qualname": f"{module}.{name}"})
        raise RefusedGlobal(f"global '{module}.{name}' is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal("persistent ids are not allowed")


def restricted_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


@dataclass
class ModelFile:
    """What aimc reads from an official ``.model``."""

    net_kwargs: dict[str, Any]
    temperature: float | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def read_model_file(path: str | Path) -> ModelFile:
    """Parse an official ``.model`` pickle safely; only ``model.args.net.args`` and ``pi_head_opts`` are used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = restricted_loads(data)
    except RefusedGlobal as e:
        raise CheckpointError(
            f"refusing to load {path}: {e}; a .model may only hold plain containers and scalars "
            "(nothing in it was executed)"
        ) from None
    except Exception as e:  # truncated / not a pickle at all
        raise CheckpointError(f"{path} is not a valid .model pickle ({type(e).__name__}: {e})") from None
    try:
        args = obj["model"]["args"]
        net_kwargs = dict(args["net"]["args"])
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{path}: expected d['model']['args']['net']['args'] (an official VPT .model)"
        ) from None
    temp = None
    head_opts = args.get("pi_head_opts") if isinstance(args, dict) else None
    if isinstance(head_opts, dict) and "temperature" in head_opts:
        try:
            temp = float(head_opts["temperature"])
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: pi_head_opts.temperature is not a number") from None
    return ModelFile(net_kwargs=net_kwargs, temperature=temp, raw=obj)


def write_model_file(path: str | Path, config: VPTConfig) -> None:
    """Write an official-layout ``.model`` for ``config`` (for tests and round trips)."""
    from aimc.core.io import atomic_write_bytes

    if config.action_head != "vpt" or config.goal_dim:
        raise ConfigError("only plain VPT architectures have an official .model")
    d = {
        "version": 1,
        "model": {
            "function": "lib.policy:MinecraftAgentPolicy",
            "args": {
                "net": {"function": "lib.policy:MinecraftPolicy", "args": config.official_kwargs()},
                "pi_head_opts": {"temperature": config.temperature},
            },
        },
    }
    atomic_write_bytes(path, pickle.dumps(d, protocol=2))


# ------------------------------------------------------------------------------------------ state dicts
def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """``.weights`` / ``steve1.weights`` via ``torch.load(weights_only=True)``; a few common wrappers unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refusing to load {path}: it is not a plain tensor state dict ({e})") from None
    except Exception as e:
        raise CheckpointError(f"cannot load {path} as a torch state dict ({type(e).__name__}: {e})") from None
    for wrapper in ("state_dict", "model_state_dict", "policy"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict) and len(obj) <= 4:
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(f"{path} does not hold a mapping of parameter names to tensors")
    return dict(obj)


def strip_prefix(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Remove a ``module.`` / ``policy.`` / ``module.policy.`` prefix shared by every key."""
    for p in KNOWN_PREFIXES:
        if sd and all(k.startswith(p) for k in sd):
            return {k[len(p) :]: v for k, v in sd.items()}, p
    return sd, ""


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _fmt_list(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def check_state_dict(policy: VPTPolicy, sd: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped keys; return silently if all match."""
    expected = {k: _shape(v) for k, v in policy.state_dict().items()}
    missing, unexpected, shaped = state_diff(expected, {k: _shape(v) for k, v in sd.items()})
    mismatched = [f"{k}: {source} {_shape(sd[k])} vs model {expected[k]}" for k in shaped]
    if not (missing or unexpected or mismatched):
        return
    cfg = policy.config
    arch = preset_name(cfg) or f"hidsize={cfg.hidsize}, layers={cfg.n_layers}"
    lines = [f"{source} does not match the architecture ({arch}, goal_dim={cfg.goal_dim}):"]
    if missing:
        lines.append(f"  missing ({len(missing)}): {_fmt_list(missing)}")
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): {_fmt_list(unexpected)}")
    if mismatched:
        lines.append(f"  shape mismatch ({len(mismatched)}): {_fmt_list(mismatched)}")
    if missing and len(missing) == len(expected):
        lines.append(
            f"  (no key matched: keys look like {sorted(sd)[:3]}; known prefixes {list(KNOWN_PREFIXES)})"
        )
    raise CheckpointError("\n".join(lines))


def load_strict(policy: VPTPolicy, sd: dict[str, Tensor], source: str = "checkpoint") -> VPTPolicy:
    sd, _ = strip_prefix(sd)
    check_state_dict(policy, sd, source)
    policy.load_state_dict(sd, strict=True)
    return policy


# -------------------------------------------------------------------------------------- config inference
def infer_config(
    sd: dict[str, Tensor],
    net_kwargs: dict[str, Any] | None = None,
    temperature: float | None = None,
) -> VPTConfig:
    """Architecture from tensor shapes (hidsize, heads, memory, layers, channels, goal, heads), checked
    against the ``.model`` kwargs when given. ``img_shape`` comes from the kwargs, else assumes square."""
    sd, _ = strip_prefix(sd)

    def need(key: str) -> Tensor:
        if key not in sd:
            raise CheckpointError(
                f"cannot infer the architecture: key {key!r} is missing (is this a VPT policy?)"
            )
        return sd[key]

    hidsize = need("net.final_ln.weight").shape[0]
    n_layers = len({k.split(".")[3] for k in sd if k.startswith("net.recurrent_layer.blocks.")})
    r_rows = need("net.recurrent_layer.blocks.0.r.orc_block.r_layer.weight").shape[0]
    heads = r_rows // 10
    memory = need("net.recurrent_layer.blocks.0.r.orc_block.b_nd").shape[1]
    n_stacks = len({k.split(".")[4] for k in sd if k.startswith("net.img_process.cnn.stacks.")})
    chans = tuple(
        need(f"net.img_process.cnn.stacks.{s}.firstconv.layer.weight").shape[0] for s in range(n_stacks)
    )
    nblock = len({k.split(".")[6] for k in sd if k.startswith("net.img_process.cnn.stacks.0.blocks.")})
    dense_w = need("net.img_process.cnn.dense.layer.weight")
    cnn_outsize, dense_in = dense_w.shape
    ratio = need("net.recurrent_layer.blocks.0.mlp0.layer.weight").shape[0] // hidsize
    goal_dim = (
        sd["net.mineclip_embed_linear.weight"].shape[1] if "net.mineclip_embed_linear.weight" in sd else 0
    )
    pre_ln = "net.pre_lstm_ln.weight" in sd
    head_keys = sorted({k.split(".")[1] for k in sd if k.startswith("pi_head.")})
    if head_keys == ["buttons", "camera"]:
        action_head, n_actions = "vpt", 17
    elif len(head_keys) == 1:
        action_head, n_actions = "categorical", sd[f"pi_head.{head_keys[0]}.linear_layer.weight"].shape[0]
    else:
        raise CheckpointError(f"cannot infer the action head from pi_head keys {head_keys}")
    base = chans[0] // 16 if chans[0] % 16 == 0 else 0
    if base and chans == tuple(base * c for c in (16, 32, 32)[: len(chans)]):
        width, ichans = base, (16, 32, 32)[: len(chans)]
    else:
        width, ichans = 1, chans

    kw = net_kwargs or {}
    if kw:
        _check_supported_kwargs(kw)
        img_shape = tuple(int(v) for v in kw.get("img_shape", [128, 128, 3])[:2])
    else:
        side = math.isqrt(dense_in // chans[-1]) if chans[-1] and dense_in % chans[-1] == 0 else 0
        if side * side * chans[-1] != dense_in:
            raise CheckpointError(f"cannot infer the image size from dense input {dense_in}; pass the .model")
        img_shape = (side * 2**n_stacks, side * 2**n_stacks)
    if temperature is None:
        temperature = DEFAULT_TEMPERATURE
    try:
        cfg = VPTConfig(
            img_shape=img_shape,  # type: ignore[arg-type]
            impala_width=width,
            impala_chans=ichans,
            impala_nblock=nblock,
            cnn_outsize=cnn_outsize,
            hidsize=hidsize,
            heads=heads,
            n_layers=n_layers,
            memory=memory,
            pointwise_ratio=ratio,
            goal_dim=goal_dim,
            pre_lstm_ln=pre_ln,
            action_head=action_head,  # type: ignore[arg-type]
            n_actions=n_actions,
            temperature=temperature,
        )
    except ConfigError as e:
        raise CheckpointError(f"inconsistent checkpoint shapes: {e}") from None
    if kw:
        _cross_check(cfg, kw)
    return cfg


_REQUIRED_KWARGS = {
    "recurrence_type": "transformer",
    "attention_mask_style": "clipped_causal",
    "use_pointwise_layer": True,
    "pointwise_use_activation": False,
    "recurrence_is_residual": True,
    "diff_mlp_embedding": False,
}


def _check_supported_kwargs(kw: dict[str, Any]) -> None:
    bad = [f"{k}={kw[k]!r} (need {v!r})" for k, v in _REQUIRED_KWARGS.items() if k in kw and kw[k] != v]
    if kw.get("conv3d_params") is not None:
        bad.append("conv3d_params (the inverse dynamics model is not supported)")
    if kw.get("img_statistics") is not None:
        bad.append("img_statistics (input normalisation statistics are not supported)")
    if bad:
        raise CheckpointError("unsupported VPT architecture options: " + "; ".join(bad))


def _cross_check(cfg: VPTConfig, kw: dict[str, Any]) -> None:
    expect = {
        "hidsize": cfg.hidsize,
        "attention_heads": cfg.heads,
        "n_recurrence_layers": cfg.n_layers,
        "impala_width": cfg.impala_width,
        "pointwise_ratio": cfg.pointwise_ratio,
    }
    problems = [
        f"{k}: .model {kw[k]!r} vs weights {v!r}" for k, v in expect.items() if k in kw and kw[k] != v
    ]
    if "attention_memory_size" in kw:
        mem = int(kw["attention_memory_size"]) - int(kw.get("timesteps", 128))
        if mem != cfg.memory:
            problems.append(f"memory: .model {mem} vs weights {cfg.memory}")
    if "impala_chans" in kw and tuple(kw["impala_chans"]) != cfg.impala_chans:
        problems.append(f"impala_chans: .model {tuple(kw['impala_chans'])} vs weights {cfg.impala_chans}")
    if "use_pre_lstm_ln" in kw and bool(kw["use_pre_lstm_ln"]) != cfg.pre_lstm_ln:
        problems.append(f"use_pre_lstm_ln: .model {kw['use_pre_lstm_ln']} vs weights {cfg.pre_lstm_ln}")
    if problems:
        raise CheckpointError(".model and weights disagree: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------- loaders
def _build(cfg: VPTConfig, device: torch.device | str) -> VPTPolicy:
    with torch.device("meta"):
        policy = VPTPolicy(cfg)
    return policy.to_empty(device=device)


def load_official(
    model_path: str | Path | None,
    weights_path: str | Path,
    device: torch.device | str = "cpu",
    temperature: float | None = None,
) -> VPTPolicy:
    """Official ``.model`` (optional) + ``.weights`` / ``steve1.weights`` -> :class:`VPTPolicy` (eval mode)."""
    mf = read_model_file(model_path) if model_path is not None else None
    sd = load_state_dict_file(weights_path)
    sd, _ = strip_prefix(sd)
    temp = temperature if temperature is not None else (mf.temperature if mf else None)
    cfg = infer_config(sd, mf.net_kwargs if mf else None, temp)
    policy = _build(cfg, device)
    load_strict(policy, sd, source=str(weights_path))
    return policy.eval()


def save_pretrained(
    policy: VPTPolicy, directory: str | Path, overwrite: bool = False, source: dict[str, Any] | None = None
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` atomically (a killed writer leaves nothing)."""
    from aimc.core.io import atomic_dir, atomic_write_json, save_safetensors_atomic

    directory = Path(directory)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": policy.config.to_dict(),
        "preset": preset_name(policy.config),
        "num_parameters": policy.num_parameters(),
        "source": source or {},
    }
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        save_safetensors_atomic(policy.state_dict(), tmp / WEIGHTS_FILE, metadata={"format": FORMAT_NAME})
        atomic_write_json(tmp / CONFIG_FILE, meta)
    return directory


def read_pretrained_meta(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    cfg_path = directory / CONFIG_FILE
    try:
        meta = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory} is not an aimc policy directory (no {CONFIG_FILE})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{cfg_path}: format {meta.get('format')!r} is not {FORMAT_NAME!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format version {meta['format_version']} is newer than this aimc supports"
        )
    return meta


def from_pretrained(directory: str | Path, device: torch.device | str = "cpu") -> VPTPolicy:
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_pretrained_meta(directory)
    try:
        cfg = VPTConfig.from_dict(meta["config"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad config ({e})") from None
    wpath = directory / WEIGHTS_FILE
    if not wpath.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}")
    sd = load_file(str(wpath), device=str(device))
    policy = _build(cfg, device)
    load_strict(policy, sd, source=str(wpath))
    return policy.eval()


def load_policy(
    path: str | Path, weights: str | Path | None = None, device: torch.device | str = "cpu"
) -> VPTPolicy:
    """Any supported form: an aimc directory, ``X.model`` (+ ``weights``), or a lone ``.weights`` file."""
    path = Path(path)
    if path.is_dir():
        return from_pretrained(path, device)
    if path.suffix == ".model":
        if weights is None:
            raise CheckpointError(f"{path} holds only the architecture; also pass its .weights file")
        return load_official(path, weights, device)
    if path.is_file():
        return load_official(None, path, device)
    raise CheckpointError(f"{path} does not exist")
