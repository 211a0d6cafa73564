"""Training a VPT-headed policy on Minecraft data: the stored joint code is split into the buttons and camera
labels (`head_targets`), and a policy whose head does not fit the stored codes is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.core.errors import AimcError
from aimc.train.objectives import head_targets


def test_head_targets_split_the_joint_code_and_check_ranges() -> None:
    from aimc.envs.actions import joint_code, split_joint_code

    rng = np.random.default_rng(0)
    buttons, camera = rng.integers(0, 8641, 24), rng.integers(0, 121, 24)
    codes = torch.from_numpy(joint_code(buttons, camera).reshape(4, 6))
    t = head_targets(codes, {"camera": 121, "buttons": 8641})
    assert torch.equal(t["buttons"], torch.from_numpy(buttons.reshape(4, 6)))
    assert torch.equal(t["camera"], torch.from_numpy(camera.reshape(4, 6)))
    b, c = split_joint_code(codes.numpy())
    assert np.array_equal(b, t["buttons"].numpy().reshape(-1)) and np.array_equal(c, t["camera"].numpy().reshape(-1))
    small = torch.tensor([[0, 16, 3]])
    assert head_targets(small, {"action": 17})["action"] is small  # Crafter: the stored action as it is
    with pytest.raises(AimcError, match="stored action 17 is outside the policy's 17 actions"):
        head_targets(small + 1, {"action": 17})
    with pytest.raises(AimcError, match="is not a joint code of the VPT heads"):
        head_targets(torch.tensor([[8641 * 121]]), {"camera": 121, "buttons": 8641})


@pytest.fixture(scope="module")
def contractor_store(tmp_path_factory) -> Path:
    """One converted contractor trajectory of 48 non-null steps (moves, jumps, camera turns), 16x16 frames."""
    from aimc.cli.convert_contractor import vpt_joint_code
    from aimc.data.contractor.convert import ContractorConfig, SkippedTrajectories, convert_contractor
    from tests.data.contractor_fixtures import line, write_trajectory

    root = tmp_path_factory.mktemp("contractor")
    keys = [("w",), ("a",), ("s",), ("d",), ("space",), ("w", "space")]
    lines = [line(keys=keys[i % len(keys)], dx=float(4 * (i % 5) - 8), dy=float(2 * (i % 3) - 2), tick=i)
             for i in range(48)]
    write_trajectory(root / "src", "8.0/test-trajectory-000000000000-20220101-000000", lines)
    convert_contractor(ContractorConfig(source=str(root / "src"), out=str(root / "store"), size=(16, 16)),
                       vpt_joint_code, skipped=SkippedTrajectories(echo=None), progress=False)
    return root / "store"


def test_a_vpt_policy_trains_on_converted_contractor_data(contractor_store, tmp_path, one_torch_thread) -> None:
    from aimc.data.store import Episode, list_episodes
    from aimc.envs.actions import split_joint_code
    from aimc.train.config import load_train_config
    from aimc.train.loop import read_metrics, run

    (ep,) = [Episode(p) for p in list_episodes(contractor_store)]
    buttons, camera = split_joint_code(np.asarray(ep.actions))
    assert ep.length == 48 and len(set(buttons.tolist())) > 3 and len(set(camera.tolist())) > 3
    cfg = load_train_config("test", overrides=[f"out={tmp_path / 'run'}", "policy_overrides={img_shape: [16, 16], action_head: vpt}", "val_fraction=0",
                                               "val_every=0"], data=[{"path": str(contractor_store)}])
    s = run(cfg, progress=False)
    assert s["step"] > 0 and s["skipped_episodes"] == 0
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "run") if "train/loss" in r]
    # two heads of 8641 and 121 classes: the untrained joint NLL is about log(8641 * 121) = 13.9
    assert losses and all(np.isfinite(losses)) and 10.0 < losses[0] < 16.0
    # the same data under a categorical policy of Crafter's 17 actions: one clear error, not an index error
    bad = load_train_config("test", overrides=[f"out={tmp_path / 'bad'}", "val_fraction=0", "val_every=0",
                                               "policy_overrides={img_shape: [16, 16], action_head: categorical, n_actions: 17}"],
                            data=[{"path": str(contractor_store)}])
    with pytest.raises(AimcError, match="outside the policy's 17 actions"):
        run(bad, progress=False)
