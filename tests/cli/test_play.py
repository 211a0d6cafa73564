"""`aimc play` and `TextAgent` on a tiny bundle (policy trained a few steps + an untrained small embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.cli.app import main
from aimc.core.video import count_frames, write_mp4
from tests.train.fixtures import EMBED_DIM, demo_store, one_thread, tiny_cfg  # noqa: F401


@pytest.fixture(scope="module")
def bundle(demo_store, tmp_path_factory):  # noqa: F811
    import torch

    from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder
    from aimc.train.loop import run

    root = tmp_path_factory.mktemp("bundle")
    torch.manual_seed(0)
    emb = VideoTextEmbedder(VideoTextConfig(channels=(4, 8), frame_dim=16, embed_dim=EMBED_DIM, frame_size=32), device="cpu")
    emb.save_pretrained(root / "embedder_src")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run(tiny_cfg(demo_store, root / "run", "n_frames=64", "val_every=0", f"embedder={root / 'embedder_src'}"), progress=False)
    torch.set_num_threads(n)
    return root / "run"


def test_play_writes_video_and_prints_events(bundle, tmp_path, capsys, one_thread, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # the default --video is ./play.mp4
    video = tmp_path / "play.mp4"
    args = ["play", "collect wood", "--checkpoint", str(bundle), "--steps", "25", "--seed", "2", "--size", "64"]
    assert main([*args, "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("collect wood: ")
    steps = int(out.split(": ", 1)[1].split(" steps")[0])
    assert 1 <= steps <= 25 and count_frames(video) == steps + 1  # the state after the last action too
    assert main([*args, "--video", ""]) == 0  # same seed -> same rollout, same printout (no video)
    assert capsys.readouterr().out == out.replace(f"wrote {video}\n", "")
    assert out.endswith(f"wrote {video}\n")

    clip = tmp_path / "clip.mp4"
    write_mp4(clip, np.random.default_rng(0).integers(0, 255, (20, 64, 64, 3), dtype=np.uint8))
    assert main(["play", "x", "--checkpoint", str(bundle), "--steps", "5", "--visual-goal", str(clip)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("video goal: clip.mp4: ") and out.endswith("wrote play.mp4\n")  # default video path

    assert main(["play", "x", "--checkpoint", str(tmp_path), "--steps", "5"]) == 2
    assert "not an agent bundle" in capsys.readouterr().err


def test_play_video_ends_with_the_final_state_and_its_event(bundle, tmp_path, capsys, one_thread, monkeypatch):  # noqa: F811
    """Stop the episode on the step whose action causes an event: the last frame must show that event."""
    import aimc.eval.play
    from aimc.eval.play import play

    first = play(bundle, "collect wood", steps=120, seed=1)["events"]
    assert first, "the tiny agent caused no event in 120 steps"
    step, event = first[0]  # (steps taken when it happened, event)
    drawn: list[list[str]] = []
    real = aimc.eval.play.annotate
    monkeypatch.setattr(aimc.eval.play, "annotate", lambda frame, lines: drawn.append(lines) or real(frame, lines))
    video = tmp_path / "end.mp4"
    args = ["play", "collect wood", "--checkpoint", str(bundle), "--steps", str(step), "--seed", "1", "--size", "64"]
    assert main([*args, "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"collect wood: {step} steps;") and f"step {step}: {event}" in out
    assert count_frames(video) == step + 1 == len(drawn)
    assert drawn[-1][1:] == [f"step {step}", *[e for s, e in first if s == step]]  # the final state shows the event
    assert event not in drawn[-2]  # ... which the state before the last action could not


def test_text_agent_seeds_and_guidance(bundle, one_thread):  # noqa: F811
    from aimc.eval.agent import TextAgent

    agent = TextAgent.from_bundle(bundle)
    goals = agent.goal_from_text(["collect wood", "drink water"])
    assert goals.shape == (2, EMBED_DIM) and goals.dtype == np.float32
    assert agent.goal_from_video(np.zeros((16, 64, 64, 3), np.uint8)).shape == (EMBED_DIM,)
    pov = np.random.default_rng(0).integers(0, 255, (6, 2, 64, 64, 3), dtype=np.uint8)

    def rollout(goal, scale, seed):
        agent.start(goal, cond_scale=scale, seed=seed)
        return [agent.act(pov[t], np.array([t == 0, t == 0])).tolist() for t in range(6)]

    a = rollout(goals, 6.0, 0)
    assert a == rollout(goals, 6.0, 0)
    assert all(0 <= x < 17 for row in a for x in row)
    # a zero goal makes guidance a no-op: (1 + s) u - s u = u
    zero = np.zeros_like(goals)
    assert rollout(zero, 6.0, 1) == rollout(zero, 0.0, 1)
    with pytest.raises(Exception, match="goals must be"):
        agent.start(np.zeros((2, EMBED_DIM + 1), np.float32))


def test_fixed_prompt_goals(bundle, demo_store, tmp_path):  # noqa: F811
    """fixed-prompt mode: every frame of a segment carries the prompt's text embedding (or zeros, p_uncond)."""
    from aimc.data.dataset import SegmentDataset
    from aimc.embed.base import make_embedder
    from aimc.train.loop import build_data

    emb_dir = bundle.parent / "embedder_src"
    cfg = tiny_cfg(demo_store, tmp_path / "fp", "fixed_prompt=collect wood", f"embedder={emb_dir}", "segment.p_uncond=0.5")
    train, _, fixed = build_data(cfg)
    want = make_embedder(emb_dir, device="cpu").encode_text(["collect wood"])[0].numpy()
    assert np.allclose(fixed, want)
    ds = SegmentDataset(train, cfg.segment, (64, 64), None, fixed)
    kinds = set()
    for seed in range(12):
        g = ds[(0, seed)]["goal"].numpy()
        assert g.shape == (16, EMBED_DIM)
        kinds.add("zero" if not g.any() else "prompt")
        assert not g.any() or np.allclose(g, want[None])
    assert kinds == {"zero", "prompt"}


def test_empty_instruction_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    from aimc.cli.app import main

    for text in ("", "   "):
        code = main(["play", text, "--video", str(tmp_path / "p.mp4")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: the instruction is empty") and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_goal_sources_text_prior_and_predictor_dirs(bundle, tmp_path, capsys, one_thread):  # noqa: F811
    """`TextAgent(goal_source=...)` and `aimc eval tasks --goal-source`: the text side, a saved CVAE (any predictor
    directory), and a predictor of the wrong width refused in one line before any episode runs."""
    import json

    import torch

    from aimc.eval.agent import TextAgent
    from aimc.prior.cvae import CVAEPrior, PriorConfig

    text = TextAgent.from_bundle(bundle, goal_source="text").goal_from_text(["collect wood"])
    np.testing.assert_array_equal(text, TextAgent.from_bundle(bundle).goal_from_text(["collect wood"]))  # no prior: text
    torch.manual_seed(0)
    cvae = CVAEPrior(PriorConfig(input_dim=EMBED_DIM, hidden_dim=8, latent_dim=4))
    cvae.save_pretrained(tmp_path / "cvae")
    agent = TextAgent.from_bundle(bundle, goal_source=str(tmp_path / "cvae"))
    np.testing.assert_allclose(agent.goal_from_text(["collect wood"], seed=4), cvae.sample(text, seed=4), rtol=1e-6)
    np.testing.assert_array_equal(agent.goal_from_text(["collect wood"], use_prior=False), text)  # per-call override
    with pytest.raises(Exception, match="empty"):
        agent.goal_from_text([" "])

    from aimc.prior.base import GOAL_SPACE_FILE, embedder_identity

    same = {"embedder": embedder_identity(str(TextAgent.from_bundle(bundle).bundle.embedder_ref())), "target": "visual"}
    (tmp_path / "cvae" / GOAL_SPACE_FILE).write_text(json.dumps(same))
    TextAgent.from_bundle(bundle, goal_source=str(tmp_path / "cvae"))  # trained on this bundle's embedder: fine
    (tmp_path / "cvae" / GOAL_SPACE_FILE).write_text(json.dumps({**same, "embedder": "sha256:" + "0" * 64}))
    with pytest.raises(Exception, match="trained on another embedder's goal space"):
        TextAgent.from_bundle(bundle, goal_source=str(tmp_path / "cvae"))
    (tmp_path / "cvae" / GOAL_SPACE_FILE).unlink()

    CVAEPrior(PriorConfig(input_dim=EMBED_DIM + 1, hidden_dim=8, latent_dim=4)).save_pretrained(tmp_path / "wide")
    args = ["eval", "tasks", "--checkpoint", str(bundle), "--tasks", "chop_tree", "--episodes", "1", "--max-steps", "3",
            "--workers", "0", "--videos", "0", "--baselines", "", "--out", str(tmp_path / "ev")]
    assert main([*args, "--goal-source", str(tmp_path / "wide")]) == 2
    err = capsys.readouterr().err
    assert f"outputs {EMBED_DIM + 1}-d goals but the policy expects {EMBED_DIM}-d" in err and "Traceback" not in err
    assert not (tmp_path / "ev" / "report.json").exists()
    assert main([*args, "--goal-source", "prior"]) == 2
    assert "has no goal predictor" in capsys.readouterr().err
    assert main([*args, "--goal-source", str(tmp_path / "cvae")]) == 0
    assert json.loads((tmp_path / "ev" / "eval_config.json").read_text())["goal_source"] == str(tmp_path / "cvae")


def test_bundle_names_an_aligner_and_play_uses_it(bundle, tiny_lm, tmp_path, capsys, one_thread):  # noqa: F811
    """A bundle whose `prior` member is an aligner: `TextAgent` (hence `aimc play`) takes its goals from it."""
    import torch

    from aimc.eval.agent import TextAgent
    from aimc.prior.aligner import Aligner
    from aimc.prior.config import AlignerConfig
    from aimc.train.bundle import AgentBundle

    torch.manual_seed(0)
    aligner = Aligner(AlignerConfig(backbone=str(tiny_lm), out_dim=EMBED_DIM, n_queries=2, width=16, layers=1, heads=2))
    aligner.save_pretrained(tmp_path / "aligner")
    AgentBundle.read(bundle).copy_into(tmp_path / "with_aligner", prior=tmp_path / "aligner")
    agent = TextAgent.from_bundle(tmp_path / "with_aligner")
    np.testing.assert_allclose(agent.goal_from_text(["chop a tree"]), aligner.sample(["chop a tree"]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(agent.goal_from_text(["chop a tree"]), agent.goal_from_text(["chop a tree"], use_prior=False))
    assert main(["play", "chop a tree", "--checkpoint", str(tmp_path / "with_aligner"), "--steps", "3", "--video", ""]) == 0
    assert capsys.readouterr().out.startswith("chop a tree: ")


def test_play_with_the_chain_planner_prints_its_subgoals(bundle, tmp_path, capsys, one_thread):  # noqa: F811
    """A pickaxe in a fresh world: the chain starts at its first missing prerequisite (wood), and says so."""
    from aimc.eval.play import play

    r = play(bundle, "craft a wooden pickaxe", steps=15, seed=0, planner="chain")
    assert r["subgoals"][0] == (0, "chop a tree")
    assert play(bundle, "craft a wooden pickaxe", steps=15, seed=0, planner="none")["subgoals"] == []
    args = ["play", "craft a wooden pickaxe", "--checkpoint", str(bundle), "--steps", "15", "--video", ""]
    assert main([*args, "--planner", "chain"]) == 0
    assert "  step 0: now: chop a tree\n" in capsys.readouterr().out
    assert main([*args, "--planner", "fancy"]) == 2
    err = capsys.readouterr().err
    assert "unknown planner 'fancy'" in err and err.count("\n") == 1


def test_eval_tasks_planner_flag_is_checked_before_any_rollout(bundle, tmp_path, capsys, one_thread):  # noqa: F811
    import dataclasses
    import json

    from aimc.train.bundle import AgentBundle

    args = ["eval", "tasks", "--tasks", "place_table", "--episodes", "1", "--max-steps", "4", "--workers", "0",
            "--videos", "0", "--baselines", "", "--out", str(tmp_path / "ev")]
    assert main([*args, "--checkpoint", str(bundle), "--planner", "fancy"]) == 2
    assert "unknown planner 'fancy'" in capsys.readouterr().err
    other = AgentBundle.read(bundle).copy_into(tmp_path / "elsewhere")
    dataclasses.replace(other, world="minecraft").write(tmp_path / "elsewhere")
    assert main([*args, "--checkpoint", str(tmp_path / "elsewhere"), "--planner", "chain"]) == 2
    err = capsys.readouterr().err
    assert "no chain planner for world 'minecraft'" in err and err.count("\n") == 1
    assert not (tmp_path / "ev").exists()
    assert main([*args, "--checkpoint", str(bundle), "--planner", "chain"]) == 0
    assert json.loads((tmp_path / "ev" / "eval_config.json").read_text())["planner"] == "chain"
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["planner"] == "chain"
    assert "chained by planner <b>chain</b>" in (tmp_path / "ev" / "report.html").read_text()
