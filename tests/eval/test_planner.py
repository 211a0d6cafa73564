"""Prompt chaining (`aimc.eval.planner`): matching an instruction to its event, the sub-instruction sequence on a
real Crafter world, goals that change mid-episode without losing memory, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.embed.captions import instruction
from aimc.envs import make
from aimc.eval.planner import ChainPlanner, EventMatcher, check_planner, make_planner


def words(texts: list[str]) -> np.ndarray:
    """A stand-in sentence encoder: bag of words hashed into 64 bins (no model to load)."""
    out = np.zeros((len(texts), 64), np.float32)
    for i, text in enumerate(texts):
        for w in text.lower().split():
            out[i, sum(map(ord, w)) % 64] += 1.0
    return out


@pytest.fixture(scope="module")
def minilm():
    from aimc.embed.text import shared_text_encoder

    enc = shared_text_encoder("minilm")
    return lambda texts: enc.encode(list(texts)).numpy()


def test_matcher_finds_the_event_or_nothing():
    m = EventMatcher({"collect_coal": ("mine coal", "collect coal"), "collect_wood": ("chop a tree",)}, words, 0.5)
    assert m.match("collect the coal")[0] == "collect_coal"
    assert m.match("chop a tree")[0] == "collect_wood"
    event, score = m.match("sing loudly")
    assert event is None and score < 0.5


def test_heldout_wordings_match_their_events(minilm):
    """The threshold and the encoder, on the held-out wordings no caption uses, and on prompts about nothing."""
    from aimc.eval.tasks import load_suite

    suite = load_suite("crafter-heldout")
    planner = ChainPlanner("crafter", minilm)
    pairs = [(t.success.events[0], p) for t in suite.tasks for p in t.prompts]
    right = sum(planner.start(p).event == e for e, p in pairs)
    assert right >= len(pairs) - 2, f"{right} of {len(pairs)} held-out wordings matched their event"
    for nonsense in ("hello", "fly to the moon", "what time is it"):
        assert planner.start(nonsense).event is None


def test_chain_on_a_crafter_world_follows_the_recipe():
    env = make("crafter", size=64)
    env.reset(seed=1)
    planner = ChainPlanner("crafter", words)
    plan = planner.start("collect coal please")
    assert plan.event == "collect_coal"
    inv = env.player.inventory
    assert planner.prompt(plan, env) == "chop a tree" and plan.current == "collect_wood"
    inv["wood"] = 3  # enough for a table (2) and a pickaxe (1)
    assert planner.prompt(plan, env) == "place a crafting table"
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 1, y)] = "table"  # a table in view: craft beside it
    assert "table" in env.visible_materials()
    assert planner.prompt(plan, env) == "craft a wooden pickaxe"
    home = env.player.pos.copy()
    env.player.pos = home + (20, 0)  # far from the table: it no longer counts as at hand, place another
    assert "table" not in env.visible_materials()
    assert planner.prompt(plan, env) == "place a crafting table"
    env.player.pos = home + (10, 0)  # out of view but remembered within reach: walk back and craft
    assert "table" not in env.visible_materials()
    assert planner.prompt(plan, env) == "craft a wooden pickaxe"
    inv["wood_pickaxe"] = 1
    assert planner.prompt(plan, env) == "collect coal please"  # the last step keeps the user's words
    assert plan.current == "collect_coal"

    other = planner.start("sing loudly")  # no event: the prompt is followed as it is
    assert other.event is None and planner.prompt(other, env) == "sing loudly"
    survival = planner.start("drink water")  # a task without prerequisites
    assert planner.prompt(survival, env) == "drink water"


def test_chain_event_says_the_matched_events_caption_at_the_last_step_too():
    env = make("crafter", size=64)
    env.reset(seed=1)
    planner = make_planner("chain-event", "crafter", words)
    assert isinstance(planner, ChainPlanner) and not planner.own_words and planner.night is None
    plan = planner.start("collect coal please")
    assert planner.prompt(plan, env) == "chop a tree"  # prerequisites as under `chain`
    env.player.inventory["wood_pickaxe"] = 1
    assert planner.prompt(plan, env) == instruction("collect_coal", "crafter") != "collect coal please"
    assert plan.current == "collect_coal"
    other = planner.start("sing loudly")  # nothing matched: the user's words are all there is
    assert planner.prompt(other, env) == "sing loudly"


def test_night_rule_shelters_from_dusk_sleeps_when_walled_in_and_resumes_in_the_morning():
    """`chain-night`: the chain by day; from dusk (daylight < 0.35) "build a shelter", "fall asleep" once the
    player's walkable pocket is a 2x2 room; the chain again once the morning light is full (>= 0.85)."""
    from aimc.eval.planner import NightRule

    env = make("crafter", size=64)
    env.reset(seed=5)
    planner = ChainPlanner("crafter", words, night=NightRule())
    plan = planner.start("collect coal please")
    changes = []
    for t in range(320):
        text = planner.prompt(plan, env)
        if not changes or changes[-1][1] != text:
            changes.append((t, text, float(env.world.daylight)))
        if t == 200:  # midnight: wall the player into a 2x2 room (itself and the cell to its right)
            x, y = (int(v) for v in env.player.pos)
            for i in range(x - 1, x + 3):
                for j in range(y - 1, y + 3):
                    env.world[(i, j)] = "grass" if i in (x, x + 1) and j in (y, y + 1) else "stone"
            assert planner.prompt(plan, env) == "fall asleep"
        env.step(0)
    texts = [c[1] for c in changes]
    assert texts == ["chop a tree", "build a shelter", "fall asleep", "chop a tree"], changes
    assert changes[1][2] < 0.35 <= changes[0][2] and changes[3][2] >= 0.85
    day = ChainPlanner("crafter", words)  # without the rule the night changes nothing
    env.reset(seed=5)
    plan = day.start("collect coal please")
    for _ in range(220):
        assert day.prompt(plan, env) == "chop a tree"
        env.step(0)


def test_rest_rule_says_the_wake_up_instruction_all_night_and_names_it_wake_up():
    """`chain-rest`: the chain by day; from dusk to full morning light the one instruction "sleep until morning"
    (the wake-up task's canonical caption), walled in or not; the PPO prompt list gets exactly that text."""
    from aimc.eval.planner import NightRule, night_texts

    env = make("crafter", size=64)
    env.reset(seed=5)
    planner = ChainPlanner("crafter", words, night=NightRule(rest=True))
    plan = planner.start("collect coal please")
    texts = []
    for _ in range(420):
        text = planner.prompt(plan, env)
        if not texts or texts[-1] != text:
            texts.append(text)
        env.step(0)
    assert texts == ["chop a tree", "sleep until morning", "chop a tree"]
    assert planner.night.keys == {"sleep until morning": "wake_up"}
    env.reset(seed=5)  # a task that needs the night's zombies is left to the chain all night
    plan = planner.start("defeat a zombie")
    assert plan.event == "defeat_zombie"
    assert {planner.prompt(plan, env) for _ in range(420) if env.step(0)} == {"defeat a zombie"}
    assert night_texts("chain-rest") == ["sleep until morning"]
    assert night_texts("chain-night") == ["build a shelter", "fall asleep"] and night_texts("chain") == []
    assert make_planner("chain-rest", "crafter").night.keys == {"sleep until morning": "wake_up"}
    with pytest.raises(AimcError, match="no chain planner for world 'minecraft'"):
        check_planner("chain-rest", "minecraft")


def test_prepare_rule_makes_the_night_kit_from_the_afternoon_then_rests():
    """`chain-prepare`: the chain in the morning; once the falling light passes PREPARE_DAYLIGHT, the chain toward
    the demonstrator's night kit in its order (pickaxe, sword, stones, a meal), recorded as the step's event;
    "sleep until morning" from dusk; the chain again in the morning light (which rises: no preparation)."""
    from aimc.eval.planner import PREPARE_DAYLIGHT, NightRule, night_texts

    env = make("crafter", size=64)
    env.reset(seed=5)
    planner = make_planner("chain-prepare", "crafter", words)
    plan = planner.start("drink some water")
    assert plan.event == "collect_drink"
    changes, currents, light = [], set(), []
    for t in range(390):  # to the next morning (the next afternoon's preparation starts near step 400)
        light.append(float(env.world.daylight))
        text = planner.prompt(plan, env)
        if not changes or changes[-1][1] != text:
            changes.append((t, text, float(env.world.daylight)))
        if text == "chop a tree":
            currents.add(plan.current)
        env.player.health = 9  # standing still all night: keep the test about the prompts
        env.step(0)
    assert [c[1] for c in changes] == ["drink some water", "chop a tree", "sleep until morning", "drink some water"]
    (t1, *_), (t2, *_), (t3, *_) = changes[1:]
    assert light[t1] < PREPARE_DAYLIGHT <= light[t1 - 1] and light[t2] < 0.35 <= light[t2 - 1] and light[t3] >= 0.85
    assert 90 <= t1 <= 110 and currents == {"collect_wood"}  # a pickaxe first: its chain starts at wood
    rule = NightRule(rest=True, prepare=PREPARE_DAYLIGHT)
    kit = {"wood_pickaxe": 0, "wood_sword": 0, "stone": 0, "food": 9}
    order = []
    for item, value in (("wood_pickaxe", 1), ("wood_sword", 1), ("stone", rule.stones), ("food", 0)):
        order.append(rule.prepare_step(kit))
        kit[item] = value
    assert order == ["make_wood_pickaxe", "make_wood_sword", "collect_stone", None]
    assert rule.prepare_step({**kit, "food": rule.restock_below - 1}) == "eat_cow"
    assert night_texts("chain-prepare") == ["sleep until morning"]


def test_dagger_labeller_prepares_when_the_learner_is_told_to():
    """Under `chain-prepare` the DAgger labeller starts its night preparation at the planner's threshold, so a
    step where the learner is told to make the kit is labelled with the kit's actions; a run's own value wins."""
    from aimc.eval.planner import PREPARE_DAYLIGHT
    from aimc.finetune.config import DaggerConfig, demonstrator_options

    assert demonstrator_options(DaggerConfig(planner="chain-prepare"))["prepare_daylight"] == PREPARE_DAYLIGHT
    assert "prepare_daylight" not in demonstrator_options(DaggerConfig(planner="chain-rest"))
    assert demonstrator_options(DaggerConfig(), "chain-prepare")["prepare_daylight"] == PREPARE_DAYLIGHT
    own = DaggerConfig(planner="chain-prepare", demonstrator={"prepare_daylight": 0.8})
    assert demonstrator_options(own)["prepare_daylight"] == 0.8


def test_visible_materials_are_the_local_view_only():
    env = make("crafter", size=64)
    env.reset(seed=1)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 4, y + 3)] = "furnace"  # the view's corner: 9 wide, 7 high
    env.world[(x + 5, y)] = "table"  # one cell outside
    seen = env.visible_materials()
    assert "furnace" in seen and "table" not in seen
    assert env.visible_cells("furnace") == [(x + 4, y + 3)] and env.visible_cells("table") == []


def test_bad_planner_names_and_worlds():
    with pytest.raises(AimcError, match="unknown planner 'fancy'"):
        make_planner("fancy", "crafter")
    with pytest.raises(AimcError, match="no chain planner for world 'minecraft'"):
        check_planner("chain", "minecraft")
    assert make_planner("none", "minecraft") is None and make_planner(None, "crafter") is None
    with pytest.raises(AimcError, match="no chain planner for world 'minecraft'"):
        check_planner("chain-night", "minecraft")
    assert make_planner("chain-night", "crafter").night is not None
    from aimc.eval.config import EvalConfig

    with pytest.raises(ConfigError, match="planner: unknown planner"):
        EvalConfig(planner="fancy")
    from aimc.train.bundle import AgentBundle

    meta = {"format": "aimc-agent", "version": 1, "policy": "p", "embedder": None, "embed_name": None, "prior": None,
            "cond_scale": 0.0, "world": "crafter", "world_config": {}}
    assert AgentBundle.from_dict(meta).planner is None  # older bundles have no planner field
    assert AgentBundle.from_dict({**meta, "planner": "chain"}).planner == "chain"
    with pytest.raises(CheckpointError, match="field 'planner' must be"):
        AgentBundle.from_dict({**meta, "planner": "fancy"})
