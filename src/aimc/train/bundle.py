"""`AgentBundle`: the one reader and writer of ``bundle.json``, the contract between training and its users.

An agent bundle is a directory whose ``bundle.json`` names the policy, the embedder that defines its goal
space, an optional prior, the default guidance scale and the world the policy plays::

    {"format": "aimc-agent", "version": 1, "policy": "best", "embedder": "embedder" | <registered name> | null,
     "embed_name": ..., "prior": "prior" | null, "cond_scale": 6.0, "world": "crafter", "world_config": {"size": 64},
     "planner": "chain",                          # optional: prompt chaining by default (aimc.eval.planner)
     "temperature": 0.5}                          # optional: sampling temperature by default (1 when left out)

Member paths are relative to the bundle directory. Training writes one into its run dir
(`aimc.train.loop.write_bundle`), the pipeline makes a self-contained copy (`AgentBundle.copy_into`), and
eval, play and ``init_from`` read it here, so a format change lands in one place. The world comes from the
training data (`training_world`), never from a default, so a policy trained on another world says so.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc.core import keys
from aimc.core.errors import AimcError, CheckpointError, EpisodeError
from aimc.core.io import atomic_dir, atomic_write_json

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "aimc-agent"
BUNDLE_VERSION = 1
DEFAULT_COND_SCALE = 6.0
"""STEVE-1's guidance scale λ, written into bundles unless the training config says otherwise."""
_KEYS = ("format", "version", "policy", "embedder", "embed_name", "prior", "cond_scale", "world", "world_config")
_OPTIONAL = ("planner", "temperature")
"""Fields a v1 bundle may leave out (older bundles do); read as None."""


@dataclass(frozen=True, kw_only=True)
class AgentBundle:
    """The fields of ``bundle.json``; `root` is the directory they are relative to (None while unsaved)."""

    policy: str
    """Policy directory (`aimc.policy.save_pretrained` layout), relative to the bundle."""
    embedder: str | None
    """Embedder directory in the bundle, or a registered embedder name; None = an unconditional policy."""
    embed_name: str | None
    """Name of the goal embeddings the policy was trained on (`aimc embed --name`)."""
    prior: str | None
    """Goal-predictor directory (a CVAE prior or an aligner, `aimc.prior.load_predictor`), relative to the bundle;
    None = text embeddings are goals."""
    cond_scale: float | None
    """Default classifier-free guidance scale for `TextAgent.start`."""
    world: str
    """World name for `aimc.envs.make`, taken from the training data's episodes."""
    world_config: dict[str, Any]
    """Keyword options for `aimc.envs.make`; its observation size matches the policy's input."""
    planner: str | None = None
    """Default prompt chaining for this agent (`aimc.eval.planner`: "chain", "chain-event", "chain-night", "chain-rest", "chain-prepare" or "none"); None = none."""
    temperature: float | None = None
    """Default sampling temperature of the agent's actions (`aimc.policy.Agent`); None = 1, plain sampling."""
    root: Path | None = field(default=None, compare=False)
    """Bundle directory (set by `read`, `write` and `copy_into`); not part of the file."""

    # ------------------------------------------------------------------------------------------- files
    @classmethod
    def read(cls, path: str | Path) -> AgentBundle:
        """Read and validate the bundle in directory `path` (or its bundle.json); errors are one line."""
        path = Path(path)
        if path.name == BUNDLE_FILE and path.is_file():
            path = path.parent
        f = path / BUNDLE_FILE
        if not f.is_file():
            raise CheckpointError(f"{path} is not an agent bundle (no {BUNDLE_FILE}); pass a run dir of `aimc train policy`")
        try:
            meta = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{f}: invalid JSON at line {e.lineno} ({e.msg})") from None
        except UnicodeDecodeError:
            raise CheckpointError(f"{f}: not UTF-8 text") from None
        return cls.from_dict(meta, where=str(f), root=path)

    @classmethod
    def from_dict(cls, meta: Any, where: str = "agent bundle", root: Path | None = None) -> AgentBundle:
        """Build from parsed bundle.json contents, checking format, version, fields and member paths."""
        if not isinstance(meta, dict):
            raise CheckpointError(f"{where}: expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
            raise CheckpointError(
                f"{where}: not an {BUNDLE_FORMAT} v{BUNDLE_VERSION} bundle "
                f"(format={meta.get('format')!r}, version={meta.get('version')!r})"
            )
        for key in _KEYS:
            if key not in meta:
                raise CheckpointError(f"{where}: missing field {key!r}")
        unknown = sorted(set(meta) - set(_KEYS) - set(_OPTIONAL))
        if unknown:
            raise CheckpointError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a v1 bundle has "
                                  f"{', '.join(_KEYS + _OPTIONAL)}")
        bundle = cls(**{k: meta[k] for k in _KEYS[2:]}, **{k: meta[k] for k in _OPTIONAL if k in meta}, root=root)
        bundle.validate(where)
        return bundle

    def to_dict(self) -> dict[str, Any]:
        """bundle.json contents (format and version first, `root` and unset optional fields left out)."""
        out: dict[str, Any] = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION}
        out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "root"})
        for name in _OPTIONAL:  # left out when unset, so a bundle without them is the v1 file it always was
            if out[name] is None:
                del out[name]
        return out

    def write(self, path: str | Path) -> AgentBundle:
        """Validate against directory `path` (members must already be there), then write bundle.json atomically."""
        root = Path(path)
        bundle = dataclasses.replace(self, root=root)
        bundle.validate(str(root / BUNDLE_FILE))
        atomic_write_json(root / BUNDLE_FILE, bundle.to_dict())
        return bundle

    def copy_into(self, dest: str | Path, embedder: str | Path | None = None, prior: str | Path | None = None) -> AgentBundle:
        """A self-contained bundle at `dest`: this policy, plus `embedder` / `prior` directories when given
        (else this bundle's own; a registered embedder name stays a name), copied and renamed into place at once."""
        dest = Path(dest)
        emb_src = Path(embedder) if embedder is not None else self.embedder_ref()
        prior_src = Path(prior) if prior is not None else self.prior_dir()
        for what, src in (("embedder", embedder), ("prior", prior)):
            if src is not None and not Path(src).is_dir():
                raise CheckpointError(f"cannot assemble a bundle in {dest}: {what} {src} is not a directory")
        with atomic_dir(dest, overwrite=True) as tmp:
            shutil.copytree(self.policy_dir(), tmp / "policy")
            emb_name = emb_src if not isinstance(emb_src, Path) else "embedder"
            if isinstance(emb_src, Path):
                shutil.copytree(emb_src, tmp / "embedder")
            if prior_src is not None:
                shutil.copytree(prior_src, tmp / "prior")
            out = dataclasses.replace(self, policy="policy", embedder=emb_name,
                                      prior="prior" if prior_src is not None else None)
            out.write(tmp)
        return dataclasses.replace(out, root=dest)

    # ------------------------------------------------------------------------------------------- checks
    def validate(self, where: str | None = None) -> None:
        """Field types, and (with a `root`) that the policy, prior and embedder it names exist."""
        where = where or (str(self.root / BUNDLE_FILE) if self.root is not None else "agent bundle")
        _check(where, "policy", self.policy, isinstance(self.policy, str) and bool(self.policy), "a non-empty path")
        _check(where, "world", self.world, isinstance(self.world, str) and bool(self.world), "a non-empty world name")
        for name in ("embedder", "embed_name", "prior"):
            value = getattr(self, name)
            _check(where, name, value, value is None or (isinstance(value, str) and bool(value)), "a non-empty string or null")
        ok = self.cond_scale is None or (isinstance(self.cond_scale, int | float) and not isinstance(self.cond_scale, bool))
        _check(where, "cond_scale", self.cond_scale, ok, "a number or null")
        _check(where, "world_config", self.world_config, isinstance(self.world_config, dict), "an object of world options")
        from aimc.eval.planner import PLANNER_NAMES

        _check(where, "planner", self.planner, self.planner is None or self.planner in PLANNER_NAMES,
               f"null or one of {', '.join(PLANNER_NAMES)}")
        t = self.temperature
        ok = t is None or (isinstance(t, int | float) and not isinstance(t, bool) and t > 0)
        _check(where, "temperature", t, ok, "a number > 0 or null")
        if self.root is None:
            return
        if not self.policy_dir().is_dir():
            raise CheckpointError(f"{where}: field 'policy' names {self.policy_dir()}, which is not a directory")
        prior = self.prior_dir()
        if prior is not None and not prior.is_dir():
            raise CheckpointError(f"{where}: field 'prior' names {prior}, which is not a directory")
        emb = self.embedder_ref()
        if isinstance(emb, str):
            from aimc.embed.base import available_embedders

            if emb not in available_embedders():
                raise CheckpointError(
                    f"{where}: field 'embedder' is {emb!r}, neither a directory in the bundle nor a registered embedder "
                    f"({', '.join(available_embedders())})"
                )

    # ------------------------------------------------------------------------------------------- members
    def _member(self, rel: str) -> Path:
        return self.root / rel if self.root is not None else Path(rel)

    def policy_dir(self) -> Path:
        """The policy directory (`aimc.policy.load_policy` reads it)."""
        return self._member(self.policy)

    def policy_files(self) -> dict[str, Path]:
        """The policy's weights and config by name: what a run starting from this bundle fingerprints
        (`RunDir.check_inputs`), since its config names the bundle by path only."""
        policy = self.policy_dir()
        return {f"start policy {name}": policy / name for name in ("model.safetensors", "config.json")
                if (policy / name).is_file()}

    def prior_dir(self) -> Path | None:
        """The goal predictor's directory (`aimc.prior.load_predictor` reads it), or None for a bundle without one."""
        return self._member(self.prior) if self.prior is not None else None

    def embedder_ref(self) -> Path | str | None:
        """What `aimc.embed.make_embedder` takes: the embedder's directory when the bundle (or an absolute path)
        holds it, else its registered name; None for an unconditional policy."""
        if self.embedder is None:
            return None
        local = self._member(self.embedder)
        return local if local.is_dir() else self.embedder


def _check(where: str, name: str, value: Any, ok: bool, want: str) -> None:
    if not ok:
        raise CheckpointError(f"{where}: field {name!r} must be {want}, got {value!r}")


def _size(value: Any) -> tuple[int, int] | None:
    """A world's `size` option as (H, W): an int is square, a pair is (H, W); anything else is not a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _frame_size(ep: Path, img_shape: tuple[int, int]) -> int | list[int]:
    """The `size` option an episode's frames were recorded at (an int when square), read off its first frame."""
    from aimc.data.store import Episode

    if (ep / keys.FRAMES_FILE).is_file():
        h, w = Episode(ep, check_video=False).frames(0, 1).shape[1:3]
    else:
        h, w = int(img_shape[0]), int(img_shape[1])
    return int(h) if h == w else [int(h), int(w)]


def training_world(episodes: Iterable[str | Path], img_shape: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """(world, world_config) for the bundle of a policy trained on `episodes`, from their metadata.json.

    Every episode must name the same world and options (one bundle plays one world). The bundle's world is the
    one the data was recorded in, frame size included, even where the policy reads another size (a 32x32
    student of 64x64 worlds): training (`aimc.data.dataset`) and acting (`aimc.policy.Agent`) resize frames with
    the same function, so the policy sees the same pixels in both, and a world rebuilt at the policy's size
    would render different ones (native 32x32 textures are not 64x64 frames resized). Data that does not
    record a size (collected with the world's default options) gets the size its frames have, or where an
    episode holds no video, the policy's image height.
    """
    seen: dict[str, tuple[dict[str, Any], Path]] = {}
    for ep in episodes:
        ep = Path(ep)
        try:
            meta = json.loads((ep / keys.METADATA_FILE).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EpisodeError(f"episode {ep}: unreadable {keys.METADATA_FILE} ({e})") from None
        world = meta.get("world")
        if not isinstance(world, str) or not world:
            raise EpisodeError(f"episode {ep}: {keys.METADATA_FILE} names no world, so the agent bundle cannot say which world it plays")
        config = meta.get("world_config") or {}
        if not isinstance(config, dict):
            raise EpisodeError(f"episode {ep}: world_config in {keys.METADATA_FILE} is not an object ({config!r})")
        config = dict(config)
        if "size" in config:
            if _size(config["size"]) is None:
                raise AimcError(f"episode {ep} records size {config['size']!r}, which is not a frame size (an int or [H, W])")
        else:
            config["size"] = _frame_size(ep, img_shape)
        if seen and world not in seen:
            other, (_, where) = next(iter(seen.items()))
            raise AimcError(f"the training data mixes worlds: {other!r} ({where}) and {world!r} ({ep}); train one policy per world")
        if world in seen and seen[world][0] != config:
            raise AimcError(
                f"the training data mixes {world} options: {seen[world][0]} ({seen[world][1]}) and {config} ({ep}); "
                "collect every store with the same world_config"
            )
        seen.setdefault(world, (config, ep))
    if not seen:
        raise AimcError("no training episodes to take the bundle's world from")
    world, (config, _) = next(iter(seen.items()))
    return world, config
