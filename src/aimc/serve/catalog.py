"""The checkpoints a browser may choose: an allow-list scanned from the configured directory.

The page sends a checkpoint *name*; the server looks it up in the names it found itself and never joins
browser input onto a path, so `../x`, an absolute path or a symlink leading out of the directory cannot
name anything else. A bundle is `<root>/<name>/bundle.json` or, for a pipeline's output, `<root>/<name>/bundle/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aimc.core.errors import AimcError, ConfigError
from aimc.serve.config import ServeConfig
from aimc.train.bundle import BUNDLE_FILE, AgentBundle


class CheckpointRefused(AimcError):
    """A browser named a checkpoint the server does not offer (outside the directory, or unknown)."""


class Catalog:
    """Checkpoint name -> bundle directory, from `--checkpoint`, `--checkpoints` or the shipped agent."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.root: Path | None = Path(cfg.checkpoints).resolve() if cfg.checkpoints is not None else None
        self._single: dict[str, Path] = {}
        if self.root is None:
            if cfg.checkpoint is not None:
                path = Path(cfg.checkpoint).resolve()
            else:
                from aimc.eval.play import shipped_bundle

                path = shipped_bundle()
            AgentBundle.read(path)  # a bad bundle is a start-up error, not a page error
            name = f"{path.parent.name}/{path.name}" if path.name == "bundle" else path.name
            self._single = {name: path}
        elif not self.scan():
            raise ConfigError(f"--checkpoints {cfg.checkpoints} holds no agent bundle (<name>/{BUNDLE_FILE} or "
                              f"<name>/bundle/{BUNDLE_FILE}); train one with `aimc train policy` or `aimc pipeline`")

    def scan(self) -> dict[str, Path]:
        """Name -> bundle directory; rescanned on each call, so runs that finish later appear in the page."""
        if self.root is None:
            return dict(self._single)
        found: dict[str, Path] = {}
        for child in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if child.name.startswith(".") or not child.is_dir():
                continue
            for path, name in ((child, child.name), (child / "bundle", f"{child.name}/bundle")):
                real = path.resolve()
                if (path / BUNDLE_FILE).is_file() and real.is_relative_to(self.root):
                    found[name] = real
                    break
        return found

    def names(self) -> list[str]:
        return list(self.scan())

    @property
    def default(self) -> str:
        names = self.names()
        return names[0] if names else ""

    def resolve(self, name: str | None) -> Path:
        """The bundle directory of `name` (None or "" = the default); refuses anything not offered."""
        name = name or self.default
        found = self.scan()
        if name in found:
            return found[name]
        where = f"inside {self.root}" if self.root is not None else "offered by this server"
        if ".." in Path(name).parts or name.startswith(("/", "\\", "~")) or "\\" in name:
            raise CheckpointRefused(f"checkpoint {name!r} refused: the page can only choose checkpoints {where}")
        raise CheckpointRefused(f"unknown checkpoint {name!r}; choose one of: {', '.join(found) or '(none)'}")

    def describe(self) -> list[dict[str, Any]]:
        """For the page: each checkpoint's name and default guidance scale (unreadable bundles say why)."""
        out = []
        for name, path in self.scan().items():
            try:
                scale = AgentBundle.read(path).cond_scale
                out.append({"name": name, "cond_scale": scale, "error": None})
            except AimcError as e:
                out.append({"name": name, "cond_scale": None, "error": str(e)})
        return out
