"""The "auto" convolution choice (issue 18): each conv layer takes whichever of direct and Winograd measured
faster for its shape, thread count and machine; the choice is cached per machine, the first writer wins, and
the outputs stay within float rounding of the direct path."""

from __future__ import annotations

import json
import time

import pytest
import torch

from aimc.policy import VPTPolicy, get_config
from aimc.policy.vpt import conv_select
from aimc.policy.vpt import model as vpt_model

_winograd = vpt_model.winograd_conv3x3


@pytest.fixture(autouse=True)
def _setup(one_torch_thread, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vpt_model, "WINOGRAD_MIN_CHANNELS", 1)  # every conv of the tiny preset takes part


def _policy() -> VPTPolicy:
    torch.manual_seed(0)
    return VPTPolicy(get_config("test-tiny")).eval()


def _img(policy: VPTPolicy, b: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (b, 2, *policy.config.img_shape, 3), dtype=torch.uint8, generator=g)


def _convs(policy: VPTPolicy) -> list[vpt_model.FanInLayer]:
    return [m for m in policy.modules() if isinstance(m, vpt_model.FanInLayer) and isinstance(m.layer, torch.nn.Conv2d)]


def _selector(monkeypatch: pytest.MonkeyPatch, path) -> conv_select.ConvSelector:
    sel = conv_select.ConvSelector(path, repeats=2)
    monkeypatch.setattr(conv_select, "SELECTOR", sel)
    return sel


def _slow(fn, seconds: float = 0.01):
    def wrapped(*args, **kwargs):
        time.sleep(seconds)
        return fn(*args, **kwargs)
    return wrapped


@pytest.mark.parametrize("slow", ["winograd", "direct"])
def test_auto_picks_the_path_that_is_not_made_slow(slow, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    sel = _selector(monkeypatch, tmp_path / "cal.json")
    if slow == "winograd":
        monkeypatch.setattr(vpt_model, "winograd_conv3x3", _slow(vpt_model.winograd_conv3x3))
    else:
        monkeypatch.setattr(torch.nn.Conv2d, "forward", _slow(torch.nn.Conv2d.forward))
    policy = _policy()
    img = _img(policy)
    with torch.inference_mode():
        ref, _ = policy(img)  # direct
        policy.set_conv_impl("auto")
        out, _ = policy(img)
    fast = "direct" if slow == "winograd" else "winograd"
    convs = _convs(policy)
    assert sel.measured and len(sel.memo) >= 1 and set(sel.memo.values()) == {fast}
    assert all(m.conv_impl == "auto" for m in convs)
    for k in ref.logp:  # never beyond float rounding of the direct result; identical when direct was chosen
        torch.testing.assert_close(out.logp[k], ref.logp[k], rtol=1e-4, atol=1e-4)
        assert torch.equal(out.logp[k], ref.logp[k]) == (fast == "direct")
    # the choices are on disk under this machine's key, with the times that made them
    data = json.loads((tmp_path / "cal.json").read_text())
    entries = data[conv_select.machine_key()]
    on_disk = {k for k in sel.memo if fast == "winograd" or not k.startswith("cnn-")}  # all-direct: not checked
    assert set(entries) == on_disk and all(e["impl"] == fast for e in entries.values())
    slow_ms = [e[f"{slow}_ms"] for k, e in entries.items() if not k.startswith("cnn-")]
    assert min(slow_ms) >= 10.0
    # where a layer chose Winograd, the whole CNN was checked once, its layers' choices against all direct
    nets = [k for k in entries if k.startswith("cnn-")]
    assert nets == ([conv_select.network_key(1, (2 * 2, 3, *policy.config.img_shape), policy.config.chans)]
                    if fast == "winograd" else [])


def test_a_later_process_reuses_the_cached_choice_and_new_shapes_are_measured(monkeypatch, tmp_path) -> None:
    path = tmp_path / "cal.json"
    policy = _policy().set_conv_impl("auto")
    first = _selector(monkeypatch, path)
    with torch.inference_mode():
        policy(_img(policy, b=2))
    assert first.measured
    # a new process (a fresh selector) with winograd now made slow still uses what the file says: the first
    # writer's choice wins, so concurrent workers all compute alike
    monkeypatch.setattr(vpt_model, "winograd_conv3x3", _slow(vpt_model.winograd_conv3x3, 0.02))
    second = _selector(monkeypatch, path)
    with torch.inference_mode():
        policy(_img(policy, b=2))
    assert not second.measured and second.memo == first.memo
    # batch 2 -> 3 (x 2 frames: 4 -> 6 images) changes the bucket (4 -> 8): measured anew, now direct wins
    with torch.inference_mode():
        policy(_img(policy, b=3))
    assert second.measured and all(m["impl"] == "direct" for m in second.measured)
    assert all("-n8-" in m["key"] for m in second.measured) and all("-n4-" in k for k in first.memo)


def test_a_corrupt_cache_is_measured_again(monkeypatch, tmp_path) -> None:
    path = tmp_path / "cal.json"
    path.write_text("{not json")
    sel = _selector(monkeypatch, path)
    policy = _policy().set_conv_impl("auto")
    with torch.inference_mode():
        policy(_img(policy))
    assert sel.measured and json.loads(path.read_text())[conv_select.machine_key()]
    key = next(iter(sel.memo))
    data = json.loads(path.read_text())
    data[conv_select.machine_key()][key] = {"impl": "fft"}
    path.write_text(json.dumps(data))
    again = _selector(monkeypatch, path)
    with torch.inference_mode():
        policy(_img(policy))
    # the corrupt entry is measured again and the other layers' entries are read back; the network-level check
    # ("cnn-...") runs too when this time's timings give a layer Winograd and the cache holds no network entry
    # (timing-dependent on a busy machine, so allowed, not required)
    measured = [m["key"] for m in again.measured]
    assert key in measured and all(k == key or k.startswith("cnn-") for k in measured), measured


def test_training_forwards_stay_direct_under_auto(monkeypatch, tmp_path) -> None:
    sel = _selector(monkeypatch, tmp_path / "cal.json")
    policy = _policy()
    img = _img(policy)
    ref, _ = policy(img)
    policy.set_conv_impl("auto")
    out, _ = policy(img)  # grad enabled
    assert torch.equal(out.latent, ref.latent) and not sel.measured


def test_batch_buckets_and_cpu_description() -> None:
    assert [conv_select.batch_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 17)] == [1, 2, 4, 4, 8, 8, 16, 16, 32]
    desc = conv_select.cpu_description()
    assert desc["cores"] >= 1 and isinstance(desc["flags"], list)
    assert conv_select.shape_key(2, (8, 64, 32, 32), 128) == "t2-n8-c64-k128-32x32"


def test_forget_drops_this_machines_choices_only(monkeypatch, tmp_path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"other-machine": {"t1-n1-c8-k8-8x8": {"impl": "direct"}}}))
    sel = _selector(monkeypatch, path)
    policy = _policy().set_conv_impl("auto")
    with torch.inference_mode():
        policy(_img(policy))
    n = len(json.loads(path.read_text())[conv_select.machine_key()])
    assert n >= 1 and sel.forget() == n and not sel.memo
    assert json.loads(path.read_text()) == {"other-machine": {"t1-n1-c8-k8-8x8": {"impl": "direct"}}}


def test_layer_choices_that_lose_inside_the_network_fall_back_to_direct(monkeypatch, tmp_path) -> None:
    """Each layer "measured" Winograd faster, but the stacks run slower with them than all direct: the whole-CNN
    check keeps direct, so the outputs are exactly the direct ones; made fast again, the choices are kept."""
    sel = _selector(monkeypatch, tmp_path / "cal.json")
    monkeypatch.setattr(vpt_model.FanInLayer, "_measured_impl", lambda self, x: "winograd")
    monkeypatch.setattr(vpt_model, "winograd_conv3x3", _slow(vpt_model.winograd_conv3x3, 0.005))
    policy = _policy()
    img = _img(policy)
    with torch.inference_mode():
        ref, _ = policy(img)
        policy.set_conv_impl("auto")
        out, _ = policy(img)
    (net,) = [k for k in sel.memo if k.startswith("cnn-")]
    assert sel.memo[net] == "direct" and [m["key"] for m in sel.measured] == [net]
    for k in ref.logp:
        assert torch.equal(out.logp[k], ref.logp[k])
    convs = _convs(policy)
    assert all(m.conv_impl == "auto" for m in convs)  # the check switched them off for that call only

    sel2 = _selector(monkeypatch, tmp_path / "cal2.json")  # direct made slow instead: the layers' choices stay
    monkeypatch.setattr(vpt_model, "winograd_conv3x3", _winograd)
    monkeypatch.setattr(torch.nn.Conv2d, "forward", _slow(torch.nn.Conv2d.forward, 0.005))
    with torch.inference_mode():
        out2, _ = policy(img)
    assert sel2.memo[net] == "winograd"
    for k in ref.logp:
        torch.testing.assert_close(out2.logp[k], ref.logp[k], rtol=1e-4, atol=1e-4)
