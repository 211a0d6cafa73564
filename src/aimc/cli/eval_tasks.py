"""`aimc eval tasks`: run a task suite with the trained agent and baselines; JSON + HTML report.

Examples:
    aimc eval tasks --episodes 20                                      # the shipped agent, like `aimc play`
    aimc eval tasks --checkpoint runs/agent --episodes 20 --workers 2 --out runs/eval
    aimc eval tasks --checkpoint runs/agent --cfg-scales 0,2,4,6,8 --tasks chop_tree,place_table
    aimc eval tasks --suite crafter-heldout --goal-source runs/aligner/prior --episodes 20
    aimc eval tasks --baselines-only --baselines demonstrator,random --episodes 10
    aimc eval tasks --suite my_suite.yaml --checkpoint runs/agent --backend ray
    aimc eval tasks --suite minecraft-early --checkpoint steve1/ --workers 1 --envs-per-worker 4 --device cuda

Per task: success rate with a 95 % Wilson interval, median steps to success, deaths, rates at the
suite's short horizons; per prompted condition a specificity matrix (docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import eval_app
from aimc.eval.config import EvalConfig

D = EvalConfig()  # the defaults live in the config (light: no torch), shared with the pipeline's eval stage


def _floats(text: str) -> list[float]:
    from aimc.core.errors import AimcError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AimcError(f"--cfg-scales must be comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@eval_app.command("tasks")
def eval_tasks_cmd(
    checkpoint: str | None = typer.Option(
        None, help="Agent bundle directory (bundle.json + policy/ ...); default: the shipped agent."),
    baselines_only: bool = typer.Option(False, "--baselines-only", help="Evaluate only the baselines, no agent."),
    suite: Path | None = typer.Option(None, help="Task-suite YAML or a bundled suite's name, e.g. minecraft-early "
                                      "(default: the bundled Crafter suite)."),
    tasks: str = typer.Option("", help="Comma-separated task names to run (default: all)."),
    episodes: int | None = typer.Option(None, min=1, help="Episodes per task and condition (default: the suite's)."),
    workers: int = typer.Option(D.workers, min=0, help="Parallel env worker processes (0 = in this process)."),
    envs_per_worker: int = typer.Option(D.envs_per_worker, min=1, help="Envs per worker acting in one batched policy call."),
    backend: str = typer.Option(D.backend, help="process (multiprocessing) or ray."),
    cfg_scales: str = typer.Option("", help="Extra cond scales for the CFG sweep, e.g. 0,2,4,8."),
    baselines: str = typer.Option(",".join(D.baselines), help="Any of unconditional,demonstrator,random."),
    max_steps: int | None = typer.Option(None, min=1, help="Override every task's horizon."),
    videos: int = typer.Option(D.videos, min=0, help="Tasks whose first episode is recorded and embedded."),
    episode_timeout: float = typer.Option(D.episode_timeout, help="Seconds before a silent worker is killed and its episode retried."),
    use_prior: bool | None = typer.Option(None, "--use-prior/--no-prior", help="Force the bundle's prior on/off."),
    goal_source: str | None = typer.Option(None, help="text (embedder's text side), prior (the bundle's predictor) "
                                           "or a predictor directory (aimc train prior); default: the bundle's."),
    planner: str | None = typer.Option(None, help="chain (sub-instructions from the world's recipe table), chain-event (the matched event's caption at the last step too), "
                                       "chain-night (and shelter at night), chain-rest "
                                       "(and \"sleep until morning\" at night), chain-prepare (and the night's kit from the afternoon) or none "
                                       "(the prompt on every step); default: the bundle's."),
    temperature: float | None = typer.Option(None, help="Sampling temperature of the agent's actions (below 1: closer "
                                             "to its most likely action); default: the bundle's, else 1."),
    precision: str = typer.Option(D.precision, help="What the agent's policy acts in: fp32, or bf16 where the device "
                                  "computes it natively (a GPU, an AMX / AVX-512 BF16 CPU; else fp32): faster, "
                                  "slightly different actions."),
    out: Path = typer.Option(Path(D.out), help="Output directory (report.json, report.html, videos/, eval_config.json)."),
    seed: int = typer.Option(D.seed, help="Seed for agent sampling (worlds come from the suite's seeds)."),
    device: str = typer.Option(D.device, help="torch device for the agent."),
) -> None:
    """Evaluate instruction following on a task suite."""
    from aimc.core.errors import AimcError
    from aimc.eval.run import run_eval

    if baselines_only and checkpoint is not None:
        raise AimcError("--baselines-only and --checkpoint exclude each other; pass one")
    if checkpoint is None and not baselines_only:
        from aimc.eval.play import shipped_bundle

        checkpoint = str(shipped_bundle())
    cfg = EvalConfig(
        checkpoint=checkpoint, suite=None if suite is None else str(suite), tasks=_names(tasks), episodes=episodes,
        max_steps=max_steps, cfg_scales=_floats(cfg_scales), baselines=_names(baselines), videos=videos,
        use_prior=use_prior, goal_source=goal_source, planner=planner, temperature=temperature, precision=precision, workers=workers, envs_per_worker=envs_per_worker, backend=backend, episode_timeout=episode_timeout, seed=seed,
        device=device, out=str(out),
    )
    s = run_eval(cfg)
    best = ", ".join(f"{n} {rate:.2f}" for n, rate in s["mean_success"].items())
    typer.echo(f"mean success: {best}; retried {s['retries']}, lost {s['lost_episodes']}; "
               f"wrote {s['json']} and {s['html']}")
