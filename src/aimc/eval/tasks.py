"""Task suites as YAML: instructions, a programmatic success predicate over `info["events"]`, horizons, seeds.

Format (docs/evaluation.md)::

    name: crafter-early
    world: crafter
    world_config: {size: 64}
    max_steps: 300          # per-episode horizon (tasks may override)
    horizons: [50, 100]     # extra short horizons for the specificity matrix
    seed: 1000              # episode i of every task and condition runs in world seed + i (paired worlds)
    episodes: 10            # default episodes per task and condition (CLI --episodes overrides)
    tasks:
      - name: chop_tree
        success: {any: [collect_wood]}      # or {all: [a, b]}; optional count: n (occurrences needed)
        prompts: ["chop a tree", "get wood"]  # optional: default = the caption catalogue's paraphrases
        demo_task: collect_wood             # optional: what the scripted demonstrator pursues

Every mistake raises `SuiteError` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimc.core.errors import ConfigError, UnknownNameError
from aimc.envs import DEFAULT_WORLD, world_info

DEFAULT_SUITE = Path(__file__).parent / "suites" / "crafter.yaml"
TOP_KEYS = {"name", "world", "world_config", "max_steps", "horizons", "seed", "episodes", "tasks", "description"}
TASK_KEYS = {"name", "success", "prompts", "max_steps", "demo_task", "seed", "description"}


class SuiteError(ConfigError):
    """A task-suite file is malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class Success:
    """`any`: some listed event occurs `count` times in total; `all`: every listed event occurs `count` times."""

    mode: str  # "any" | "all"
    events: tuple[str, ...]
    count: int = 1

    def step(self, occurrences: dict[str, list[int]], horizon: int | None = None) -> int | None:
        """First step (0-based action index) at which the predicate holds, within `horizon` steps; None if never."""
        def within(ev: str) -> list[int]:
            steps = occurrences.get(ev, [])
            return [s for s in steps if horizon is None or s < horizon]

        if self.mode == "any":
            merged = sorted(s for ev in self.events for s in within(ev))
            return merged[self.count - 1] if len(merged) >= self.count else None
        needed = []
        for ev in self.events:
            steps = within(ev)
            if len(steps) < self.count:
                return None
            needed.append(steps[self.count - 1])
        return max(needed)

    def label(self) -> str:
        body = ("+" if self.mode == "all" else "|").join(self.events)
        return body if self.count == 1 else f"{body} x{self.count}"


@dataclass(frozen=True)
class Task:
    name: str
    prompts: tuple[str, ...]
    success: Success
    max_steps: int
    seed: int
    demo_task: str | None = None
    description: str = ""

    def prompt(self, episode: int) -> str:
        """Episodes cycle through the paraphrases, so every wording is measured."""
        return self.prompts[episode % len(self.prompts)]


@dataclass(frozen=True)
class Suite:
    name: str
    world: str
    world_config: dict[str, Any]
    tasks: tuple[Task, ...]
    horizons: tuple[int, ...] = (50, 100)
    episodes: int = 10
    path: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise SuiteError(f"suite {self.name!r} has no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")

    def select(self, names: list[str]) -> Suite:
        """A suite with only the named tasks, in the given order."""
        from dataclasses import replace

        return replace(self, tasks=tuple(self.task(n) for n in names))

    @property
    def max_steps(self) -> int:
        return max(t.max_steps for t in self.tasks)


# ---------------------------------------------------------------------------- YAML with line numbers
class _Map(dict):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class _List(list):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _List:
    out = _List(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


class _Ctx:
    """Builds error messages `file:line: field: problem`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int, where: str, problem: str) -> SuiteError:
        return SuiteError(f"{self.path}:{line}: {where}: {problem}")

    def line_of(self, node: Any, key: str | None = None) -> int:
        if isinstance(node, _Map) and key is not None and key in node.key_lines:
            return node.key_lines[key]
        return getattr(node, "line", 0)

    def check_keys(self, node: _Map, allowed: set[str], where: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(self.line_of(node, key), f"{where}.{key}",
                                f"unknown field; valid fields: {', '.join(sorted(allowed))}")

    def int_field(self, node: _Map, key: str, where: str, default: int | None, minimum: int = 1) -> int:
        if key not in node:
            if default is None:
                raise self.fail(node.line, where, f"missing required field {key!r}")
            return default
        v = node[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(self.line_of(node, key), f"{where}.{key}", f"expected an integer >= {minimum}, got {v!r}")
        return v


def parse_suite(text: str, path: str = "<suite>") -> Suite:
    """Parse and validate suite YAML text."""
    ctx = _Ctx(path)
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ctx.fail(line, "yaml", f"invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, _Map):
        raise ctx.fail(1, "suite", "expected a mapping with 'name' and 'tasks' at the top level")
    ctx.check_keys(data, TOP_KEYS, "suite")
    name = _str(ctx, data, "name", "suite", default=Path(path).stem)
    world = _str(ctx, data, "world", "suite", default=DEFAULT_WORLD)
    world_config = data.get("world_config", {}) or {}
    if not isinstance(world_config, dict):
        raise ctx.fail(ctx.line_of(data, "world_config"), "suite.world_config", "expected a mapping of world options")
    max_steps = ctx.int_field(data, "max_steps", "suite", 300)
    base_seed = ctx.int_field(data, "seed", "suite", 0, minimum=0)
    episodes = ctx.int_field(data, "episodes", "suite", 10)
    horizons = data.get("horizons", [50, 100])
    if not isinstance(horizons, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in horizons):
        raise ctx.fail(ctx.line_of(data, "horizons"), "suite.horizons", f"expected a list of positive integers, got {horizons!r}")
    tasks_node = data.get("tasks")
    if not isinstance(tasks_node, list) or not tasks_node:
        raise ctx.fail(ctx.line_of(data, "tasks") or data.line, "suite.tasks", "expected a non-empty list of tasks")
    tasks = []
    for i, node in enumerate(tasks_node):
        tasks.append(_parse_task(ctx, node, i, max_steps, base_seed, getattr(tasks_node, "line", 0)))
    names = [t.name for t in tasks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ctx.fail(ctx.line_of(data, "tasks"), "suite.tasks", f"duplicate task names {dup}")
    return Suite(name=name, world=world, world_config=dict(world_config), tasks=tuple(tasks),
                 horizons=tuple(sorted(set(horizons))), episodes=episodes, path=path,
                 description=str(data.get("description", "")))


def _str(ctx: _Ctx, node: _Map, key: str, where: str, default: str | None = None) -> str:
    if key not in node:
        if default is None:
            raise ctx.fail(node.line, where, f"missing required field {key!r}")
        return default
    v = node[key]
    if not isinstance(v, str) or not v.strip():
        raise ctx.fail(ctx.line_of(node, key), f"{where}.{key}", f"expected a non-empty string, got {v!r}")
    return v


def _parse_task(ctx: _Ctx, node: Any, i: int, max_steps: int, base_seed: int, list_line: int) -> Task:
    where = f"tasks[{i}]"
    if not isinstance(node, _Map):
        raise ctx.fail(getattr(node, "line", list_line), where, f"expected a mapping with name/success, got {node!r}")
    name = _str(ctx, node, "name", where)
    where = f"tasks[{i}] ({name})"
    ctx.check_keys(node, TASK_KEYS, where)
    success = _parse_success(ctx, node, where)
    prompts_node = node.get("prompts")
    if prompts_node is None:
        from aimc.embed.captions import CAPTIONS

        event = success.events[0]
        if event not in CAPTIONS:
            raise ctx.fail(node.line, f"{where}.prompts",
                           f"no 'prompts' given and the caption catalogue has none for {event!r}; list prompts")
        prompts = CAPTIONS[event]
    else:
        if (not isinstance(prompts_node, list) or not prompts_node
                or not all(isinstance(p, str) and p.strip() for p in prompts_node)):
            raise ctx.fail(ctx.line_of(node, "prompts"), f"{where}.prompts",
                           f"expected a non-empty list of instruction strings, got {prompts_node!r}")
        prompts = tuple(prompts_node)
    demo_task = node.get("demo_task", success.events[0] if success.mode == "any" or len(success.events) == 1 else None)
    if demo_task is not None and not isinstance(demo_task, str):
        raise ctx.fail(ctx.line_of(node, "demo_task"), f"{where}.demo_task", f"expected an achievement name, got {demo_task!r}")
    return Task(name=name, prompts=tuple(prompts), success=success,
                max_steps=ctx.int_field(node, "max_steps", where, max_steps),
                seed=ctx.int_field(node, "seed", where, base_seed, minimum=0),
                demo_task=demo_task, description=str(node.get("description", "")))


def _parse_success(ctx: _Ctx, node: _Map, where: str) -> Success:
    if "success" not in node:
        raise ctx.fail(node.line, where, "missing required field 'success' (e.g. success: {any: [collect_wood]})")
    s = node["success"]
    line = ctx.line_of(node, "success")
    if not isinstance(s, _Map):
        raise ctx.fail(line, f"{where}.success", f"expected a mapping like {{any: [event, ...]}}, got {s!r}")
    ctx.check_keys(s, {"any", "all", "count"}, f"{where}.success")
    modes = [m for m in ("any", "all") if m in s]
    if len(modes) != 1:
        raise ctx.fail(line, f"{where}.success", "give exactly one of 'any' or 'all' (a list of event names)")
    mode = modes[0]
    events = s[mode]
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise ctx.fail(ctx.line_of(s, mode), f"{where}.success.{mode}", f"expected a non-empty list of event names, got {events!r}")
    count = ctx.int_field(s, "count", f"{where}.success", 1)
    return Success(mode=mode, events=tuple(events), count=count)


def check_events(suite: Suite, known: list[str]) -> None:
    """Reject success events the world never fires (a typo would silently score 0 %)."""
    for t in suite.tasks:
        bad = [e for e in t.success.events if e not in known]
        if bad:
            raise SuiteError(f"{suite.path}: task {t.name!r}: unknown event(s) {bad}; the world fires: {', '.join(known)}")


def bundled_suites() -> list[str]:
    """Names of the suites installed with aimc (`aimc eval tasks --suite NAME`)."""
    return sorted(p.stem for p in DEFAULT_SUITE.parent.glob("*.yaml"))


def load_suite(path: str | Path | None = None) -> Suite:
    """Read a suite file, or a bundled suite by name (`minecraft-early`); default: the bundled Crafter suite."""
    path = Path(path) if path is not None else DEFAULT_SUITE
    if not path.is_file() and path.parent == Path(".") and path.stem in bundled_suites() and path.suffix in ("", ".yaml"):
        path = DEFAULT_SUITE.parent / f"{path.stem}.yaml"
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist (bundled suites: {', '.join(bundled_suites())})")
    return parse_suite(path.read_text(), str(path))


def world_events(world: str) -> list[str]:
    """Every event name the world can fire (for `check_events`), as the world's class declares them."""
    try:
        return sorted(world_info(world).event_names)
    except UnknownNameError as e:
        raise SuiteError(f"suite world: {e}") from None
