"""STEVE-1's setup end to end on tiny files in the released formats: `aimc convert steve1` (VPT `.model` +
`.weights`, MineCLIP `attn.pth` layout, `steve1_prior.pt`), then `aimc play --world minecraft` and
`aimc eval tasks --suite minecraft-early` against the scripted games of fakes.py (no game runs here)."""

from __future__ import annotations

import collections
import gc
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.cli.app import main
from aimc.core.video import count_frames
from aimc.embed.mineclip_model import MineCLIP
from aimc.envs.actions import MINERL_KEYS, N_JOINT_CODES
from aimc.policy import Agent, VPTConfig, VPTPolicy, load_policy
from aimc.prior.cvae import CVAEPrior, PriorConfig, released_state_dict
from tests.embed.conftest import tiny_mineclip_config

GOAL = 32  # the tiny MineCLIP's embedding width (the release: 512)
CFG = VPTConfig(img_shape=(16, 16), impala_width=1, impala_chans=(4, 8, 8), hidsize=32, heads=4, n_layers=2,
                memory=6, goal_dim=GOAL)
MINECLIP_SET = ["--mineclip-set", "resolution=[32,48]", "--mineclip-set", "vision_heads=2",
                "--mineclip-set", "text_heads=2"]  # what a tiny model's weights cannot tell


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _released_files(root: Path, goal_dim: int = GOAL, prior_dim: int = GOAL) -> dict[str, Path]:
    """2x.model + steve1.weights, attn.pth and steve1_prior.pt, each in its released layout."""
    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    files = {k: root / n for k, n in (("model", "2x.model"), ("weights", "steve1.weights"),
                                       ("mineclip", "attn.pth"), ("prior", "steve1_prior.pt"))}
    args = {"net": {"args": CFG.official_kwargs()}, "pi_head_opts": {"temperature": 2.0}}
    files["model"].write_bytes(pickle.dumps({"model": {"args": args}}, protocol=2))
    torch.save(collections.OrderedDict(VPTPolicy(CFG.replace(goal_dim=goal_dim)).state_dict()), files["weights"])
    clip = MineCLIP(tiny_mineclip_config()).eval()
    torch.save({"state_dict": {"model." + k: v for k, v in clip.state_dict().items()}, "epoch": 1}, files["mineclip"])
    prior = CVAEPrior(PriorConfig(input_dim=prior_dim, hidden_dim=16, latent_dim=8))
    torch.save(released_state_dict(prior), files["prior"])
    return files


def _convert(files: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["convert", "steve1", str(files["model"]), str(files["weights"]), "--mineclip", str(files["mineclip"]),
                 "--prior", str(files["prior"]), "--out", str(out), *MINECLIP_SET, *extra])


@pytest.fixture(scope="module")
def steve1(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("steve1")
    files = _released_files(root / "released")
    assert _convert(files, root / "bundle", "--backend", "minerl") == 0
    return root / "bundle", files


def test_convert_steve1_writes_the_released_pieces_as_one_bundle(steve1, capsys):
    bundle, files = steve1
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta == {"format": "aimc-agent", "version": 1, "policy": "policy", "embedder": "embedder",
                    "embed_name": "attn", "prior": "prior", "cond_scale": 6.0, "world": "minecraft",
                    "world_config": {"backend": "minerl", "size": [16, 16]}}
    policy = load_policy(bundle / "policy")
    source = torch.load(files["weights"], weights_only=True)
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in source.items())
    assert policy.config.goal_dim == GOAL and policy.config.temperature == 2.0
    from aimc.prior import load_prior

    text = np.random.default_rng(0).normal(size=(2, GOAL)).astype(np.float32)
    np.testing.assert_allclose(load_prior(bundle / "prior").sample(text, seed=3),
                               load_prior(files["prior"]).sample(text, seed=3), rtol=1e-6)


def test_convert_steve1_refuses_pieces_that_do_not_fit(tmp_path, capsys):
    files = _released_files(tmp_path / "narrow_prior", prior_dim=16)
    assert _convert(files, tmp_path / "b1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "the prior maps 16-d" in err
    assert not (tmp_path / "b1").exists()
    files = _released_files(tmp_path / "plain_vpt", goal_dim=0)
    assert main(["convert", "steve1", str(files["model"]), str(files["weights"]), "--mineclip", str(files["mineclip"]),
                 "--prior", str(files["prior"]), "--out", str(tmp_path / "b2")]) == 2
    assert "not a STEVE-1 policy" in capsys.readouterr().err
    assert main(["convert", "steve1", str(files["model"]), str(files["weights"]), "--mineclip", str(files["mineclip"]),
                 "--prior", str(files["prior"]), "--out", str(tmp_path / "b3"), "--backend", "nope"]) == 2
    assert "unknown minecraft backend 'nope'; choose minestudio or minerl" in capsys.readouterr().err


def test_text_goals_and_actions_are_steve1s(steve1):
    """Goal = the prior's sample from MineCLIP's text embedding; action = the joint code of the guided heads."""
    from aimc.embed.base import make_embedder
    from aimc.eval.agent import TextAgent
    from aimc.prior import load_prior

    bundle, _ = steve1
    agent = TextAgent.from_bundle(bundle, seed=0)
    goal = agent.goal_from_text(["chop a tree"], seed=4)
    text = make_embedder(bundle / "embedder").encode_text(["chop a tree"]).numpy()
    np.testing.assert_allclose(goal, load_prior(bundle / "prior").sample(text, seed=4), rtol=1e-6)
    pov = np.random.default_rng(1).integers(0, 256, (3, 1, 16, 16, 3), dtype=np.uint8)
    agent.start(goal, seed=9)
    reference = Agent(load_policy(bundle / "policy"), n_envs=1, cond_scale=6.0, seed=9)
    for t in range(3):
        code = agent.act(pov[t], np.array([t == 0]))
        heads = reference.act(pov[t], goal)
        assert code.tolist() == (heads["buttons"] * 121 + heads["camera"]).tolist()
        assert 0 <= int(code[0]) < N_JOINT_CODES


def test_play_steve1_in_minecraft(steve1, games, tmp_path, capsys):
    bundle, _ = steve1
    video = tmp_path / "play.mp4"
    assert main(["play", "--world", "minecraft", "chop a tree", "--checkpoint", str(bundle), "--steps", "6",
                 "--video", str(video), "--size", "64", "--set", "backend=minestudio"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("chop a tree: 6 steps;") and "obtain_planks x4" in out
    assert "step 1: mine_log" in out and "step 2: obtain_log" in out and "step 6: kill_cow" in out
    assert count_frames(video) == 7
    minerl, studio = games
    assert studio.launches == studio.closes == 1 and minerl.launches == 0  # --set chose the backend; closed after
    assert len(studio.actions) == 6 and all(set(a) == set(MINERL_KEYS) for a in studio.actions)


def test_play_refuses_a_world_the_agent_does_not_play(steve1, games, capsys):
    bundle, _ = steve1
    assert main(["play", "--world", "crafter", "x", "--checkpoint", str(bundle), "--video", ""]) == 2
    assert "plays 'minecraft'" in capsys.readouterr().err
    assert main(["play", "--world", "minecraft", "chop a tree", "--video", ""]) == 2
    assert "ships a Crafter agent only" in capsys.readouterr().err
    assert main(["play", "x", "--checkpoint", str(bundle), "--video", "", "--set", "backend=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown minecraft backend 'nope'; choose minestudio or minerl"


def test_play_without_the_extra_is_one_install_line(steve1, monkeypatch, capsys):
    bundle, _ = steve1
    for name in ("minerl", "minerl.herobraine.env_specs.human_survival_specs", "minestudio", "minestudio.simulator"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["play", "--world", "minecraft", "x", "--checkpoint", str(bundle), "--video", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the minecraft world's minerl backend needs") and "\n" not in err
    assert "pip install 'aimc[minecraft]'" in err and "docs/minecraft.md" in err


def test_eval_the_minecraft_early_suite(steve1, games, tmp_path, capsys):
    bundle, _ = steve1
    out = tmp_path / "eval"
    assert main(["eval", "tasks", "--suite", "minecraft-early", "--checkpoint", str(bundle), "--tasks",
                 "harvest_1_log,harvest_1_planks,hunt_cow,harvest_1_dirt", "--episodes", "1", "--max-steps", "6",
                 "--workers", "0", "--videos", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["world"] == "minecraft" and report["env"] == {"world": "minecraft", "backend": "minerl", "size": [16, 16]}
    assert set(report["conditions"]) == {"agent", "unconditional"}  # no scripted demonstrator for Minecraft
    rates = {t: v["success"]["rate"] for t, v in report["conditions"]["agent"]["tasks"].items()}
    assert rates == {"harvest_1_log": 1.0, "harvest_1_planks": 1.0, "hunt_cow": 1.0, "harvest_1_dirt": 0.0}
    assert report["conditions"]["agent"]["tasks"]["harvest_1_log"]["median_steps_to_success"] == 2
    assert report["conditions"]["agent"]["cond_scale"] == 6.0 and len(report["videos"]) == 1
    minerl, _ = games
    assert minerl.world_seeds and set(minerl.world_seeds) == {1000}  # the suite's seed for episode 0
    gc.collect()  # the in-process worker is a reference cycle; its worlds stop their games when it is collected
    assert minerl.closes == minerl.launches == 5  # 4 task episodes + 1 unconditional, one world each


def test_eval_without_the_extra_is_one_install_line(steve1, monkeypatch, tmp_path, capsys):
    bundle, _ = steve1
    for name in ("minerl", "minerl.herobraine.env_specs.human_survival_specs", "minestudio", "minestudio.simulator"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["eval", "tasks", "--suite", "minecraft-early", "--checkpoint", str(bundle), "--tasks", "harvest_1_log",
                 "--episodes", "1", "--max-steps", "3", "--workers", "0", "--baselines", "", "--videos", "0",
                 "--out", str(tmp_path / "eval")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "every episode failed" in err[0] and "pip install 'aimc[minecraft]'" in err[0]


def test_bundled_suites_are_found_by_name():
    from aimc.eval.tasks import SuiteError, load_suite

    suite = load_suite("minecraft-early")
    assert suite.world == "minecraft" and suite.world_config == {"size": [128, 128]} and len(suite.tasks) == 12
    with pytest.raises(SuiteError, match="suite file nope does not exist \\(bundled suites: crafter, crafter-extended, crafter-heldout, minecraft-early\\)"):
        load_suite("nope")
