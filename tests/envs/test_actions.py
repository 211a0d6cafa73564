"""`aimc.envs.actions` (the action maps, moved below the policy): every old import path gives the same objects,
and the joint code the Minecraft world and the converted recordings use."""

from __future__ import annotations

import numpy as np
import pytest

import aimc.actions
import aimc.envs.actions as E
import aimc.policy.actions


def test_every_import_path_gives_the_same_objects() -> None:
    assert aimc.policy.actions.__all__ == aimc.actions.__all__ == E.__all__
    for name in E.__all__:
        assert getattr(aimc.policy.actions, name) is getattr(E, name) is getattr(aimc.actions, name), name


def test_joint_code_round_trips_and_checks_ranges() -> None:
    buttons = np.array([0, 295, 8640, 8639])
    camera = np.array([60, 92, 60, 120])
    codes = E.joint_code(buttons, camera)
    np.testing.assert_array_equal(codes, buttons * 121 + camera)
    b, c = E.split_joint_code(codes)
    np.testing.assert_array_equal(b, buttons)
    np.testing.assert_array_equal(c, camera)
    assert E.N_JOINT_CODES == 8641 * 121 == 1_045_561 and E.NULL_JOINT_CODE == 60
    with pytest.raises(ValueError, match="out of range 0..1045560"):
        E.split_joint_code(E.N_JOINT_CODES)
    with pytest.raises(ValueError, match="button index"):
        E.joint_code(8641, 0)
    with pytest.raises(ValueError, match="camera index"):
        E.joint_code(0, -1)


def test_the_joint_code_of_a_minerl_action_is_what_the_converter_stores() -> None:
    from aimc.cli.convert_contractor import vpt_joint_code

    action = E.null_env_action()
    action.update({"forward": 1, "attack": 1, "jump": 1, "camera": np.array([3.0, -0.5])})
    code = int(E.env_to_joint_code(action)[0])
    assert code == vpt_joint_code(action) == 295 * 121 + 92  # buttons 295, camera bins (8, 4)
    back = E.joint_code_to_env(code, squeeze=True)
    assert (back["forward"], back["attack"], back["jump"], back["use"]) == (1, 1, 1, 0)
    np.testing.assert_allclose(back["camera"], E.undiscretize_camera([8, 4]))
    assert E.describe_joint(295, 92) == "forward+attack+jump cam(8,4)"


def test_joint_action_names_are_distinct_named_on_demand_and_parsed_back() -> None:
    names = E.JOINT_ACTION_NAMES
    assert len(names) == E.N_JOINT_CODES
    assert names[60] == "noop|cam(5,5)" and names[-1] == "inventory|cam(10,10)"
    assert names[295 * 121 + 92] == "forward+attack+jump+camera|cam(8,4)"
    assert names[1:3] == ["noop|cam(0,1)", "noop|cam(0,2)"]
    rng = np.random.default_rng(0)
    sample = [int(c) for c in rng.integers(0, E.N_JOINT_CODES, 3000)]
    for code in sample:
        assert names.index(names[code]) == code
    # every button combination and every camera pair gives its own name
    assert len({names[b * 121 + 37] for b in range(E.N_BUTTON_COMBOS)}) == E.N_BUTTON_COMBOS
    assert len({names[4321 * 121 + c] for c in range(121)}) == 121
    assert "noop|cam(5,5)" in names and "fly|cam(5,5)" not in names and "noop|cam(11,0)" not in names
    with pytest.raises(ValueError, match="not a joint action name"):
        names.index("noop|cam(05,5)")
    with pytest.raises(IndexError):
        names[E.N_JOINT_CODES]
