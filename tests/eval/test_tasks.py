"""Suite parsing: the bundled suite, defaults from the caption catalogue, predicates, and line-naming errors."""

from __future__ import annotations

import pytest

from aimc.embed.captions import paraphrases
from aimc.eval.tasks import Success, SuiteError, check_events, load_suite, parse_suite, world_events

GOOD = """\
name: mini
max_steps: 120
seed: 50
tasks:
  - name: wood
    success: {any: [collect_wood]}
  - name: tools
    prompts: ["make tools"]
    success: {all: [make_wood_pickaxe, make_wood_sword]}
    max_steps: 200
"""


def test_bundled_suite_has_twelve_known_tasks():
    suite = load_suite()
    assert len(suite.tasks) >= 10
    check_events(suite, world_events("crafter"))
    names = {t.name for t in suite.tasks}
    assert {"chop_tree", "place_table", "make_wood_pickaxe", "drink_water", "eat_cow", "defeat_zombie"} <= names
    chop = suite.task("chop_tree")
    assert chop.prompts == paraphrases("collect_wood") and chop.max_steps == 300 and chop.seed == 1000


def test_parse_defaults_and_overrides():
    s = parse_suite(GOOD, "mini.yaml")
    wood, tools = s.tasks
    assert wood.prompts == paraphrases("collect_wood") and wood.max_steps == 120 and wood.seed == 50
    assert tools.prompts == ("make tools",) and tools.max_steps == 200 and tools.demo_task is None
    assert wood.prompt(1) == paraphrases("collect_wood")[1]
    assert s.horizons == (50, 100) and s.max_steps == 200


def test_success_predicates():
    occ = {"collect_wood": [3, 9, 20], "make_wood_pickaxe": [30], "make_wood_sword": [12]}
    assert Success("any", ("collect_wood",)).step(occ) == 3
    assert Success("any", ("collect_wood",), count=3).step(occ) == 20
    assert Success("any", ("collect_wood",), count=3).step(occ, horizon=20) is None
    assert Success("all", ("make_wood_pickaxe", "make_wood_sword")).step(occ) == 30
    assert Success("all", ("make_wood_pickaxe", "make_wood_sword")).step(occ, horizon=30) is None
    assert Success("any", ("eat_cow", "collect_wood")).step(occ) == 3


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (GOOD.replace("    success: {any: [collect_wood]}\n", ""), r"mini\.yaml:5: tasks\[0\] \(wood\): missing required field 'success'"),
        (GOOD.replace("max_steps: 200", "max_steps: soon"), r"mini\.yaml:10: tasks\[1\] \(tools\)\.max_steps: expected an integer"),
        (GOOD.replace("prompts: [\"make tools\"]", "prompt: [\"make tools\"]"), r"mini\.yaml:8: tasks\[1\] \(tools\)\.prompt: unknown field"),
        (GOOD.replace("{any: [collect_wood]}", "{any: [collect_wood], all: [eat_cow]}"), r"mini\.yaml:6: .*exactly one of 'any' or 'all'"),
        (GOOD.replace("{any: [collect_wood]}", "{any: []}"), r"mini\.yaml:6: tasks\[0\] \(wood\)\.success\.any: expected a non-empty list"),
        (GOOD.replace("tasks:\n", "tasks: [\n"), r"mini\.yaml:\d+: yaml: invalid YAML"),
        (GOOD.replace("  - name: tools", "  - name: wood"), r"duplicate task names \['wood'\]"),
        ("name: x\n", r"mini\.yaml:1: suite\.tasks: expected a non-empty list"),
    ],
)
def test_malformed_suites_name_line_and_field(text, pattern):
    with pytest.raises(SuiteError, match=pattern):
        parse_suite(text, "mini.yaml")


def test_unknown_event_and_missing_catalogue_prompts():
    with pytest.raises(SuiteError, match=r"unknown event\(s\) \['make_wood_pickax'\]"):
        check_events(parse_suite(GOOD.replace("[make_wood_pickaxe,", "[make_wood_pickax,"), "m.yaml"), world_events("crafter"))
    with pytest.raises(SuiteError, match="no 'prompts' given"):
        parse_suite("tasks:\n  - name: a\n    success: {any: [death]}\n", "m.yaml")
