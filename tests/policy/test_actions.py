"""Action maps: MineRL dict <-> VPT factored <-> joint, MineDojo, Crafter; fixed points and round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aimc.actions as A


def literal_from_factored(buttons: np.ndarray, camera: np.ndarray) -> tuple[int, int]:
    """Per-action transcription of VPT's CameraHierarchicalMapping.from_factored (reference for the test)."""
    b = {name: int(buttons[i]) for i, name in enumerate(A.BUTTONS_ALL)}
    if b["inventory"]:
        return A.INVENTORY_BUTTON_IDX, A.NULL_CAMERA_IDX
    key = []
    for name, group in A.BUTTON_GROUPS.items():
        if name == "camera":
            key.append("none" if tuple(camera) == (5, 5) else "camera")
            continue
        pressed = [g for g in group[1:] if b[g]]
        if name in ("fore_back", "left_right") and len(pressed) == 2:
            pressed = []
        key.append(pressed[-1] if pressed else "none")
    combos = list(itertools.product(*A.BUTTON_GROUPS.values()))
    return combos.index(tuple(key)), int(camera[0]) * 11 + int(camera[1])


def test_sizes_and_null_fixed_points() -> None:
    assert A.N_BUTTON_COMBOS == 8641 and A.N_CAMERA_COMBOS == 121
    assert A.BUTTON_COMBINATIONS[0] == ("none",) * 9 and A.BUTTON_COMBINATIONS[8640] == "inventory"
    j = A.env_to_joint(A.null_env_action())
    assert j["buttons"].tolist() == [0] and j["camera"].tolist() == [60]
    env = A.joint_to_env(0, 60, squeeze=True)
    assert all(v == 0 for k, v in env.items() if k != "camera") and np.all(env["camera"] == 0)
    assert A.is_null_factored(A.env_to_factored(A.null_env_action())).tolist() == [True]
    assert len(A.MINERL_KEYS) == 24 and A.MINERL_KEYS[-1] == "camera"


def test_reference_example() -> None:
    """vpt.md 3.3: forward+attack+jump, camera [3, -0.5] -> bins (8, 4) -> buttons 295, camera 92."""
    env = A.null_env_action()
    env.update(forward=1, attack=1, jump=1, camera=np.array([3.0, -0.5]))
    f = A.env_to_factored(env)
    assert f["camera"].tolist() == [[8, 4]]
    j = A.factored_to_joint(f)
    assert j["buttons"].tolist() == [295] and j["camera"].tolist() == [92]
    back = A.joint_to_env(295, 92, squeeze=True)
    np.testing.assert_allclose(back["camera"], [3.215, -0.615], atol=1e-3)
    assert back["forward"] == back["attack"] == back["jump"] == 1 and back["back"] == 0
    assert A.describe_joint(295, 92) == "forward+attack+jump cam(8,4)"


def test_camera_bins() -> None:
    centres = A.undiscretize_camera(np.arange(11))
    np.testing.assert_allclose(
        centres, [-10, -5.810, -3.215, -1.610, -0.615, 0, 0.615, 1.610, 3.215, 5.810, 10], atol=1e-3
    )
    assert A.discretize_camera(centres).tolist() == list(range(11))
    assert A.discretize_camera([0.27, 0.29, 100.0, -100.0]).tolist() == [5, 6, 10, 0]


def test_conflicts_and_quirks() -> None:
    def joint(**keys):
        env = A.null_env_action()
        env.update(keys)
        return A.env_to_joint(env)

    assert joint(forward=1, back=1)["buttons"][0] == 0
    assert joint(left=1, right=1)["buttons"][0] == 0
    hb = A.joint_to_factored(joint(**{"hotbar.2": 1, "hotbar.7": 1})["buttons"], 60)["buttons"][0]
    assert hb[A.BUTTONS_ALL.index("hotbar.7")] == 1 and hb[A.BUTTONS_ALL.index("hotbar.2")] == 0
    ss = A.joint_to_factored(joint(sprint=1, sneak=1)["buttons"], 60)["buttons"][0]
    assert ss[A.BUTTONS_ALL.index("sneak")] == 1 and ss[A.BUTTONS_ALL.index("sprint")] == 0
    inv = joint(inventory=1, forward=1, camera=np.array([5.0, 5.0]))
    assert inv["buttons"][0] == 8640 and inv["camera"][0] == 60
    # ESC / pickItem / swapHands are not modelled
    assert joint(ESC=1, pickItem=1, swapHands=1)["buttons"][0] == 0
    # camera-off combos force the null camera; the inventory combo does not (VPT quirk)
    assert A.joint_to_factored(0, 0)["camera"].tolist() == [[5, 5]]
    assert A.joint_to_factored(8640, 0)["camera"].tolist() == [[0, 0]]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 1), min_size=20, max_size=20),
    st.tuples(st.integers(0, 10), st.integers(0, 10)),
)
def test_factored_to_joint_matches_literal(buttons, camera) -> None:
    b, c = np.array(buttons), np.array(camera)
    j = A.factored_to_joint({"buttons": b[None], "camera": c[None]})
    assert (int(j["buttons"][0]), int(j["camera"][0])) == literal_from_factored(b, c)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 8640), st.integers(0, 120))
def test_joint_round_trip_is_canonical(b: int, c: int) -> None:
    """joint -> factored -> joint is a projection: applying it twice changes nothing, and it is the identity
    on consistent pairs (camera meta on <=> camera not null)."""
    f = A.joint_to_factored(b, c)
    j = A.factored_to_joint(f)
    f2 = A.joint_to_factored(j["buttons"], j["camera"])
    assert np.array_equal(f["buttons"], f2["buttons"])
    j2 = A.factored_to_joint(f2)
    assert j2["buttons"].tolist() == j["buttons"].tolist() and j2["camera"].tolist() == j["camera"].tolist()
    consistent = b != 8640 and (A.BUTTON_IDX_CAMERA_OFF[b] == (c == 60))
    if consistent:
        assert (int(j["buttons"][0]), int(j["camera"][0])) == (b, c)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {k: st.integers(0, 1) for k in A.MINERL_KEYS if k != "camera"}
        | {"camera": st.tuples(st.floats(-180, 180), st.floats(-180, 180))}
    )
)
def test_env_round_trip_is_idempotent(env) -> None:
    env = dict(env, camera=np.array(env["camera"]))
    j = A.env_to_joint(env)
    back = A.joint_to_env(j["buttons"], j["camera"], squeeze=True)
    j2 = A.env_to_joint(back)
    assert j2["buttons"].tolist() == j["buttons"].tolist() and j2["camera"].tolist() == j["camera"].tolist()
    assert back["ESC"] == back["pickItem"] == back["swapHands"] == 0
    assert np.all(np.abs(back["camera"]) <= 10.0 + 1e-9)


def test_batched_env_dicts() -> None:
    env = {k: np.zeros(3, dtype=np.int64) for k in A.MINERL_KEYS if k != "camera"}
    env["camera"] = np.zeros((3, 2))
    env["attack"][1] = 1
    j = A.env_to_joint(env)
    assert j["buttons"].shape == (3,) and j["buttons"][0] == 0 and j["buttons"][1] == 4
    out = A.joint_to_env(j["buttons"], j["camera"])
    assert out["attack"].tolist() == [0, 1, 0] and out["camera"].shape == (3, 2)


def test_minedojo_mapping() -> None:
    noop = A.minedojo_to_env(A.MINEDOJO_NOOP)
    assert A.env_to_joint(noop)["buttons"][0] == 0
    assert A.env_to_minedojo(noop).tolist() == list(A.MINEDOJO_NOOP)
    a = A.minedojo_to_env([1, 2, 1, 13, 10, 3, 0, 0])
    assert a["forward"] == 1 and a["right"] == 1 and a["jump"] == 1 and a["attack"] == 1
    assert a["camera"].tolist() == [15.0, -30.0]
    assert A.env_to_minedojo(a).tolist() == [1, 2, 1, 13, 10, 3, 0, 0]
    eq = A.minedojo_to_env([0, 0, 0, 12, 12, 5, 0, 4])
    assert eq["hotbar.5"] == 1 and A.env_to_minedojo(eq).tolist() == [0, 0, 0, 12, 12, 5, 0, 4]
    craft = A.minedojo_to_env([0, 0, 0, 12, 12, 4, 17, 0])
    assert all(v == 0 for k, v in craft.items() if k != "camera")
    with pytest.raises(ValueError, match="craft"):
        A.minedojo_to_env([0, 0, 0, 12, 12, 4, 17, 0], strict=True)
    with pytest.raises(ValueError, match="outside"):
        A.minedojo_to_env([3, 0, 0, 12, 12, 0, 0, 0])
    lossy = A.null_env_action()
    lossy.update(jump=1, sprint=1, use=1, attack=1, camera=np.array([4.0, -200.0]))
    assert A.env_to_minedojo(lossy).tolist() == [0, 0, 1, 12, 0, 3, 0, 0]


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 3),
        st.integers(0, 24),
        st.integers(0, 24),
        st.sampled_from([0, 1, 2, 3]),
        st.just(0),
        st.just(0),
    )
)
def test_minedojo_round_trip_on_representable_actions(a) -> None:
    assert A.env_to_minedojo(A.minedojo_to_env(a)).tolist() == list(a)


def test_crafter_actions_match_crafter() -> None:
    crafter = pytest.importorskip("crafter")
    assert list(A.CRAFTER_ACTIONS) == list(crafter.constants.actions)
    assert A.N_CRAFTER_ACTIONS == 17 and A.crafter_action_index("do") == 5
    with pytest.raises(ValueError, match="valid"):
        A.crafter_action_index("jump")


def test_short_import_path() -> None:
    import aimc.policy.actions as P

    assert A.factored_to_joint is P.factored_to_joint
