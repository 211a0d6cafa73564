"""Each stage package exports its interface: every name in `__all__` imports, and the lazy ones stay lazy."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["aimc.data", "aimc.embed", "aimc.policy", "aimc.policy.vpt", "aimc.train", "aimc.prior", "aimc.eval", "aimc.finetune",
            "aimc.pipeline", "aimc.serve"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports(package):
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        module.nope  # noqa: B018


def test_names_the_docs_use_without_a_module():
    from aimc.embed import Embedder, MineCLIPEmbedder, make_embedder
    from aimc.embed.base import make_embedder as base_make
    from aimc.embed.mineclip import MineCLIPEmbedder as MineCLIP

    assert make_embedder is base_make and MineCLIPEmbedder is MineCLIP and issubclass(MineCLIP, Embedder)


def test_importing_the_packages_and_their_configs_loads_no_torch():
    code = ("import sys\n"
            f"for p in {PACKAGES!r}: __import__(p)\n"
            "import aimc.data.config, aimc.embed.config, aimc.train.config, aimc.prior.config, aimc.eval.config\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
