"""The held-out wording suite: same tasks and worlds as the default suite, prompts no training caption uses."""

from __future__ import annotations

from pathlib import Path

import aimc.eval.tasks as tasks_mod
from aimc.embed.captions import CAPTIONS, INTENTIONS
from aimc.eval.tasks import load_suite

SUITES = Path(tasks_mod.__file__).parent / "suites"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_heldout_prompts_are_disjoint_from_every_training_caption() -> None:
    training = {_norm(t) for table in (CAPTIONS, INTENTIONS) for texts in table.values() for t in texts}
    held = load_suite(SUITES / "crafter-heldout.yaml")
    prompts = [_norm(p) for t in held.tasks for p in t.prompts]
    assert len(prompts) >= 2 * len(held.tasks)
    assert not set(prompts) & training, sorted(set(prompts) & training)


def test_heldout_suite_pairs_with_the_default_suite() -> None:
    base, held = load_suite(SUITES / "crafter.yaml"), load_suite(SUITES / "crafter-heldout.yaml")
    assert [t.name for t in base.tasks] == [t.name for t in held.tasks]
    assert [(t.success, t.seed, t.max_steps) for t in base.tasks] == [(t.success, t.seed, t.max_steps) for t in held.tasks]
    assert (base.world, base.world_config, base.horizons, base.episodes) == (held.world, held.world_config, held.horizons, held.episodes)


def test_extended_suite_extends_the_default_suite_episode_for_episode() -> None:
    """crafter-extended is the default suite plus the stone tools and waking up: its first twelve tasks are the
    default suite's (success, worlds, horizon, prompts), so a study's forgetting on them compares with every other
    evaluation."""
    base, extended = load_suite(SUITES / "crafter.yaml"), load_suite("crafter-extended")
    n = len(base.tasks)
    assert [(t.name, t.success, t.seed, t.max_steps, t.prompts) for t in base.tasks] == \
        [(t.name, t.success, t.seed, t.max_steps, t.prompts) for t in extended.tasks[:n]]
    assert (base.world, base.world_config, base.horizons) == (extended.world, extended.world_config, extended.horizons)
    assert [t.demo_task for t in extended.tasks[n:]] == ["make_stone_pickaxe", "make_stone_sword", "wake_up"]
