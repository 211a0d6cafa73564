"""The run's text goal table: paraphrases embedded by the run's embedder, written once, reused on resume."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.core.errors import ConfigError
from aimc.data.config import SegmentConfig
from aimc.embed.captions import CAPTIONS, INTENTIONS
from aimc.train.text_goals import TABLE_FILE, build_text_goal_table, caption_sets, run_text_goal_table
from tests.train.fixtures import demo_store, one_thread, tiny_cfg  # noqa: F401


class HashEmbedder:
    """Stand-in text side: a fixed vector per text, so rows can be traced back to their paraphrase."""

    dim = 6

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([np.random.default_rng(sum(map(ord, t))).standard_normal(self.dim) for t in texts])


def test_event_table_holds_every_instruction_paraphrase_in_order() -> None:
    cfg = SegmentConfig(goal_source="event_text")
    table = build_text_goal_table(HashEmbedder(), cfg)
    assert "nothing" not in table and "take_damage" not in table and "collect_wood" in table
    rows = table.table["place_table"]
    assert rows.shape == (len(CAPTIONS["place_table"]), 6)
    assert np.allclose(rows[1], HashEmbedder().encode_text([CAPTIONS["place_table"][1]])[0])


def test_intentions_cover_the_demonstrator_behaviours() -> None:
    sets = caption_sets(SegmentConfig(goal_source="intention"))
    assert {"explore", "drink", "eat", "sleep", "shelter", "arm", "fight_zombie", "flee", "place_table"} <= set(sets)
    assert sets == dict(INTENTIONS)
    with pytest.raises(ConfigError, match="no text goals"):
        caption_sets(SegmentConfig())


def test_run_table_is_written_once_and_read_back(tmp_path, monkeypatch) -> None:
    cfg = SegmentConfig(goal_source="event_text")
    assert run_text_goal_table(tmp_path, None, SegmentConfig()) is None  # visual goals: no table
    with pytest.raises(ConfigError, match="needs `embedder`"):
        run_text_goal_table(tmp_path, None, cfg)
    monkeypatch.setattr("aimc.embed.base.make_embedder", lambda path, device="cpu": HashEmbedder())
    first = run_text_goal_table(tmp_path, "some/embedder", cfg)
    assert (tmp_path / TABLE_FILE).is_file()

    def refuse(*a, **k):
        raise AssertionError("a resumed run must not re-embed")

    monkeypatch.setattr("aimc.embed.base.make_embedder", refuse)
    again = run_text_goal_table(tmp_path, "some/embedder", cfg)
    assert again.names() == first.names() and np.array_equal(again.table["collect_wood"], first.table["collect_wood"])


def test_training_with_intention_goals_end_to_end(demo_store, tmp_path, one_thread) -> None:  # noqa: F811
    """The oracle rung trains through the real loop: goal input sized by the embedder's text side, the table
    written once into the run dir, validation's goal gain logged, and the bundle pointing at the embedder."""
    from aimc.train.bundle import AgentBundle
    from aimc.train.loop import read_metrics, run

    cfg = tiny_cfg(demo_store, tmp_path / "run", "segment.embed_name=null", "segment.goal_source=intention",
                   "embedder=videotext", "n_frames=128")
    summary = run(cfg, progress=False)
    assert (tmp_path / "run" / TABLE_FILE).is_file()
    bundle = AgentBundle.read(tmp_path / "run")
    assert bundle.embedder == "videotext" and bundle.embed_name is None
    from aimc.policy import load_policy

    assert load_policy(bundle.policy_dir()).config.goal_dim == 256  # the videotext text side
    assert any("val/goal_gain" in row for row in read_metrics(tmp_path / "run"))
    assert summary["step"] >= 1
