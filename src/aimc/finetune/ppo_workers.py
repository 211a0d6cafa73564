"""PPO rollouts in worker processes: `RolloutPool`, the `RolloutEngine` split over `rollout_workers` processes.

Why: in one process a PPO rollout is bound by the world's Python step (Crafter: ~1.8 ms per step on one core)
while the second core idles or runs a small batched forward; the 90-minute preset spent 14-15 s of each 38 s
iteration there. Each worker holds its own world slots (`envs / workers` of them), its own copy of the policy
(one torch thread) and plays its share of the iteration's jobs; the trainer sends the current weights before
every iteration and gets the finished `Trajectory`s back, merged in job order.

What an episode does depends only on its job (world seed, actor seed, prompt: `ppo_rollout`), so which worker
plays it changes nothing but float rounding of batched products, as with the slots of one process. Jobs are
dealt round-robin (job i to worker i mod n), so the same run gives the same split on every resume. A failed
episode raises `EpisodeError` in the trainer with the worker's traceback as a note; a worker that dies raises
one line naming it. Multiprocessing with spawn (no fork of a process that holds torch threads); at scale the
same split would go to Ray actors, which this CPU recipe does not need.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from aimc.core.errors import AimcError, EpisodeError
from aimc.finetune.ppo_config import RewardConfig, StartConfig
from aimc.finetune.ppo_rollout import EpisodeJob, PolicyActor, RolloutEngine, TaskSpec, Trajectory

POLL_S = 1.0
"""How often the trainer checks that every worker is still alive while it waits for episodes."""


def _worker_main(conn: Any, index: int, policy_dir: str, world: str, world_config: dict[str, Any], n_slots: int,
                 stop_on_success: bool, actor_kwargs: dict[str, Any], start: StartConfig | None = None) -> None:
    """Worker loop: ("play", weights, specs, goals, jobs, max_steps, reward, gamma) -> one ("episode", traj) per
    finished episode, then ("done",); ("error", line, traceback) for a failure; None ends the worker."""
    import torch

    from aimc.eval.planner import make_planner
    from aimc.policy import load_policy

    torch.set_num_threads(1)
    try:
        policy = load_policy(policy_dir, device=actor_kwargs["device"]).eval()
        # the teacher's own copy (the trained policy gets new weights every iteration; with frame_size it is a student)
        teacher = (load_policy(actor_kwargs["teacher"], device=actor_kwargs["device"]).eval()
                   if actor_kwargs["teacher"] else None)
        if actor_kwargs["frame_size"] is not None:  # the trained policy is a student at its own frame size
            from aimc.policy.vpt.student import with_frame_size

            policy = with_frame_size(policy, (actor_kwargs["frame_size"],) * 2).eval()
        engine = RolloutEngine(world, world_config, n_slots, stop_on_success, start)
        planner = make_planner(actor_kwargs["planner"], world)
    except Exception:  # noqa: BLE001 - reported to the trainer, which raises it
        conn.send(_failure(index, traceback.format_exc()))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            return
        _, weights, specs, goals, jobs, max_steps, reward, gamma = msg
        try:
            policy.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            actor = PolicyActor(policy, n_slots, actor_kwargs["cond_scale"], actor_kwargs["device"], planner,
                                goals.__getitem__, actor_kwargs["make_labeller"], actor_kwargs["demo_tasks"],
                                actor_kwargs["skip_explore"], actor_kwargs["tied_moves"], actor_kwargs["precision"],
                                teacher, actor_kwargs["teacher_scale"])
            engine.play(actor, specs, goals, jobs, max_steps, reward, lambda t: conn.send(("episode", t)), gamma=gamma)
        except EpisodeError as e:  # already one line naming the episode
            conn.send(("error", str(e), "".join(getattr(e, "__notes__", []))))
            continue
        except Exception:  # noqa: BLE001
            conn.send(_failure(index, traceback.format_exc()))
            continue
        conn.send(("done",))


def _failure(index: int, tb: str) -> tuple[str, str, str]:
    return "error", f"PPO rollout worker {index} failed: {tb.strip().splitlines()[-1]}", tb


class RolloutPool:
    """`workers` processes sharing `n_slots` world slots; `play` has `RolloutEngine.play`'s contract plus the
    policy whose current weights the workers act with. Close it (or use it as a context manager). Each worker
    loads the policy in `policy_dir`; with `frame_size` it acts with that policy made a student at that frame
    size (the weights sent each iteration are the student's), and with `teacher` (a policy directory) that
    policy steps beside it as the teacher (`PolicyActor`)."""

    def __init__(self, workers: int, policy_dir: str, world: str, world_config: dict[str, Any], n_slots: int,
                 stop_on_success: bool, *, cond_scale: float, device: str, planner: str,
                 make_labeller: Callable[[], Any] | None, demo_tasks: dict[str, str | None], skip_explore: bool,
                 tied_moves: bool, precision: str = "fp32", frame_size: int | None = None, teacher: str | None = None,
                 teacher_scale: float = 0.0, start: StartConfig | None = None) -> None:
        if workers < 2:
            raise AimcError(f"a rollout pool needs at least 2 workers, got {workers}; use RolloutEngine for one")
        if n_slots < workers:
            raise AimcError(f"envs ({n_slots}) must be at least rollout_workers ({workers}): each worker needs a slot")
        ctx = mp.get_context("spawn")
        kwargs = {"cond_scale": cond_scale, "device": device, "planner": planner, "make_labeller": make_labeller,
                  "demo_tasks": demo_tasks, "skip_explore": skip_explore, "tied_moves": tied_moves,
                  "precision": precision, "frame_size": frame_size, "teacher": teacher, "teacher_scale": teacher_scale}
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for w in range(workers):
            slots = n_slots // workers + (1 if w < n_slots % workers else 0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, w, policy_dir, world, world_config, slots,
                                                          stop_on_success, kwargs, start), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def play(self, policy: Any, specs: dict[str, TaskSpec], goals: dict[str, np.ndarray], jobs: list[EpisodeJob],
             max_steps: int, reward: RewardConfig, on_episode: Callable[[Trajectory], None] | None = None,
             gamma: float = 1.0) -> list[Trajectory]:
        """Every job played to its end by the workers with `policy`'s current weights, in job order."""
        from multiprocessing.connection import wait

        weights = {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()}
        n = len(self.conns)
        busy: dict[Any, int] = {}
        for w, conn in enumerate(self.conns):
            share = jobs[w::n]
            if share:
                try:
                    conn.send(("play", weights, specs, goals, share, max_steps, reward, gamma))
                except OSError:  # the worker is gone (its end of the pipe closed)
                    self._died(w)
                busy[conn] = w
        done: dict[int, Trajectory] = {}
        failure: tuple[str, str] | None = None
        while busy:
            for conn in wait(list(busy), timeout=POLL_S):
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = ("dead",)
                if msg[0] == "episode":
                    done[msg[1].job.index] = msg[1]
                    if on_episode is not None:
                        on_episode(msg[1])
                    continue
                w = busy.pop(conn)
                if msg[0] == "error":
                    failure = failure or (msg[1], msg[2])
                elif msg[0] == "dead":
                    self._died(w)
            for conn, w in list(busy.items()):
                if not self.procs[w].is_alive() and not conn.poll():
                    self._died(w)
        if failure is not None:
            err = EpisodeError(failure[0])
            err.add_note(failure[1])
            raise err
        return [done[j.index] for j in jobs]

    def _died(self, w: int) -> None:
        self.procs[w].join(timeout=5)
        code = self.procs[w].exitcode
        self.close()
        raise AimcError(f"PPO rollout worker {w} died (exit code {code}); rerun the command to resume from the "
                        f"last finished iteration")

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for conn, proc in zip(self.conns, self.procs, strict=True):
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    conn.send(None)
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self.conns, self.procs = [], []

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
