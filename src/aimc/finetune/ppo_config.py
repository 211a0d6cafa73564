"""`PPOConfig`: every setting of a PPO fine-tuning run with a KL anchor; defaults are the CPU recipe.

Torch-free, so a config (an unknown task, a typo in a key, a bad number) is rejected in a fraction of a second,
before a model is loaded or anything is written. Presets are ``presets/ppo-<name>.yaml`` merged over the
defaults; CLI flags and ``--set key=value`` overrides come last (`load_ppo_config`). The resolved config is
saved as ``<out>/ppo_config.json`` and wins on resume (only `RESUMABLE` fields may change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc.core.config import build_config, preset_path
from aimc.core.errors import ConfigError, UnknownNameError
from aimc.core.precision import ACTING_PRECISIONS

PRESET_DIR = Path(__file__).parent / "presets"
PRESET_PREFIX = "ppo-"
"""PPO presets share the DAgger preset folder; their file names start with this prefix."""
CONFIG_FILE = "ppo_config.json"
RESUMABLE = ("iterations", "threads", "rollout_workers", "out", "bundle_planner")
"""Fields a resumed run may change: more iterations extend a finished run (nothing else depends on them), the
thread count and the rollout workers (float rounding only), and `out`: a run directory moved or copied
elsewhere resumes from its new place (nothing in it depends on its path; a copy branches the run, e.g. to
continue an iteration-40 checkpoint under other budgets while the original stays as it was)."""
# The default suite's tasks (src/aimc/eval/suites/crafter.yaml), by their suite names.
DEFAULT_TASKS = ("chop_tree", "collect_sapling", "place_sapling", "place_table", "make_wood_pickaxe", "make_wood_sword",
                 "mine_stone", "place_stone", "drink_water", "eat_cow", "defeat_zombie", "collect_coal")


@dataclass
class RewardConfig:
    """The reward of one step, from the world's events (`aimc.finetune.ppo_rollout.RewardHook`)."""

    success: float = 1.0
    """Paid once, at the step the task's success predicate (the suite's) first holds."""
    death: float = 0.0
    """Added at the step the world ends the episode by dying; a negative number penalises dying."""
    shaping: float = 0.0
    """Paid at the first occurrence in an episode of each prerequisite event of the task (what the scripted
    demonstrator's planner completes on its way to the task from an empty inventory, e.g. collect_wood and
    place_table for make_wood_pickaxe; `aimc.finetune.ppo_rollout.prerequisites`). 0 = the sparse task reward."""
    health: float = 0.0
    """Paid per point of the player's health gained or lost each step (Crafter's own reward uses 0.1): a dense
    signal for what the sparse `death` penalty arrives too late to teach. Traced coal failures died of thirst
    (drink 0 from step ~188, health draining for 60+ steps) or zombie hits; with this term the health lost to
    thirst and hits costs at once, and drinking or eating back to regeneration pays. The undiscounted difference
    (not a discounted potential), so a success stop at full health costs nothing. 0 = off."""
    approach: float = 0.0
    """Potential-based shaping toward the task's target material (a collect task's source: coal for
    collect_coal, stone for mine_stone, ...) while its tools are held: each step pays ``approach * (gamma *
    phi(s') - phi(s))`` with ``phi = 1 - min(d, 8) / 8`` for the nearest such cell in the player's view at
    Manhattan distance d (0 when none is in view, or after the episode's end). Traced agents walked past coal in
    view for 100+ steps with a pickaxe in hand (docs/results.md); a potential's difference leaves the
    task's optimal policy unchanged (Ng et al., 1999). Measured on coal: no gain (docs/results.md, rung 14a). 0 = off."""
    shelter: float = 0.0
    """Paid each step the player ends walled in (its walkable pocket in view is at most a 2x2 room, as the night
    planners judge it) while the light is below the demonstrator's `night_daylight`: the agents die in the first
    night asleep in the open, and the sparse `death` penalty arrives 100+ steps after the walls it needed
    (docs/results.md). Crafter worlds only; 0 = off."""


@dataclass
class BCAuxConfig:
    """An auxiliary behaviour-cloning loss on demonstrations, added at every PPO optimiser step (issue 14).

    PPO optimises the task reward only; on demonstrator data the policy's NLL, and how much of it its goal
    explains (`aimc eval goal-gain`), drift while it does. Cloning a few demonstrator segments per step keeps the
    policy a model of the expert it was trained from (VPT's RL fine-tuning used a KL to the pretrained policy;
    this is the data-side counterpart: the same segments, goals and labels as BC training)."""

    coef: float = 0.0
    """Weight of the mean per-frame NLL of the demonstrations in the loss; 0 = off."""
    data: list[str] = field(default_factory=list)
    """Episode stores of demonstrations (e.g. `aimc collect` free play with the recipe's noise)."""
    preset: str = "instruct-lstm"
    """Training preset whose segment settings (length, text goal source, DART labels, p_uncond) and chunking
    (trunc_t) cut the demonstrations: the one the starting policy was trained with."""
    overrides: list[str] = field(default_factory=list)
    """key=value overrides on that preset (e.g. segment.segment_len=128)."""
    segments: int = 2
    """Demonstration segments per optimiser step (each costs a forward and backward of segment_len frames)."""


def _default_labeller() -> dict[str, Any]:
    return {"explore_follow_facing": True, "explore_turn_prob": 0.0}


@dataclass
class ExpertAuxConfig:
    """An auxiliary loss on the expert's labels of the rollouts' own states: DAgger inside PPO.

    Every step a rollout plays, the scripted demonstrator in task mode (no noise; a labeller per world slot,
    with the episode's memory, pursuing the suite task's `demo_task`) names the action it would take in that
    state; the update adds ``coef`` times the mean NLL of those labels under the acting policy. Unlike the BC term
    (`bc`: demonstrations of the demonstrator's own states), the labels cover the states the learner actually
    reaches: a coal block in view that it walks past, the first night it spends in the open. The executed actions
    stay the learner's, so the rollouts (and what PPO learns from their rewards) do not change."""

    coef: float = 0.0
    """Weight of the mean NLL of the expert's labels over the labelled steps; 0 = off (no labeller runs)."""
    tied_moves: bool = True
    """Count every move that starts an equally short path to the expert's target as its label (the loss is then
    -log of the probability of that set): the expert breaks such ties by the way the player faces, and a learner
    that takes the other shortest way is not wrong. It raised the shipped agent's agreement only from 0.38 to
    0.42: most disagreements are a different target (another tree), or the expert's survival steps (docs)."""
    skip_explore: bool = True
    """Leave out the steps the expert would spend exploring (no target known): where to look next is a choice the
    learner's own search makes as well, and the labeller's heading there is its own hidden state."""
    demonstrator: dict[str, Any] = field(default_factory=_default_labeller)
    """DemonstratorConfig fields of the labellers (mode task and noise 0 are forced). The default makes an
    exploring label continue the way the player faces (docs/dagger.md: labels that follow the learner's motion)."""


START_MARKS = ("success", "walled_in", "walled_in_dark")
"""What a start state counts back from: the step the task's success predicate first holds, or (Crafter) the
first step the player is walled in (`aimc.eval.planner.player_enclosed`), or the first step it is walled in while
the light is below the demonstrator's `night_daylight` (its night's seal)."""
START_LEADS = ("demonstrator", "policy")
"""Who plays a start-state world from its reset before the demonstrator's part (`StartConfig.lead`)."""


@dataclass
class StartConfig:
    """Episodes that begin a few steps before the scripted demonstrator reaches a mark: a backward curriculum.

    For a start-state episode the demonstrator (no noise; task mode unless `demonstrator` says free) plays its world from the reset until `until`
    holds at step T; the world is then replayed to step T - k and the policy plays from there. k is drawn per
    episode between the iteration's bounds (`back`, moved toward `back_final`), log-uniformly, so the last steps
    before the mark are trained most while the far ones are still seen. Why: a reward the policy almost never
    reaches from the reset teaches nothing (the agents' first night: no walls in 500-step episodes), while from
    k steps before the demonstrator's own seal it is reached often enough to learn, and moving k outward extends
    what is learned backward (Salimans & Chen 2018; docs/task-finetune.md, "Start states"). The policy's memory
    is warmed on the last `warmup` replayed frames (as it would have seen them), which the update replays but
    never trains on."""

    share: float = 0.0
    """Probability that an episode of one of `tasks` starts from a demonstrator state; 0 = off."""
    tasks: list[str] = field(default_factory=list)
    """Run tasks whose episodes may start from such states (their suite `demo_task` is what the demonstrator
    pursues); empty = all of the run's tasks."""
    until: str = "success"
    """The mark k counts back from: "success" (the task's success predicate), "walled_in" (Crafter: the first
    step walled in) or "walled_in_dark" (Crafter: the first step walled in while it is dark, the night's seal)."""
    back: list[int] = field(default_factory=lambda: [1, 8])
    """[lo, hi]: the range k is drawn from in iteration 1 (k >= 0; k = 0 starts at the mark itself)."""
    back_final: list[int] | None = None
    """[lo, hi] reached at iteration `anneal_iterations` (linear in between, then held); None = `back` throughout."""
    anneal_iterations: int = 0
    """Iteration at which `back_final` is reached (>= 2 with `back_final`)."""
    extra_steps: int | None = None
    """A start-state episode lasts at most k + this many steps (never more than `max_steps`); None = `max_steps`."""
    warmup: int = 32
    """Replayed frames before the start state that the policy's memory reads (its own actions are not taken)."""
    success_at_mark: bool = False
    """A start-state episode also succeeds at the step its own play reaches the mark (`reward.success` paid, and
    with `stop_on_success` it ends there): the curriculum's goal is then the demonstrator's mark itself, as in a
    backward curriculum from a demonstration, rather than the task's success farther on (a night's seal is hours
    before the wake-up that ends the task)."""
    bc_coef: float = 0.0
    """Weight of the mean NLL of the demonstrator's own actions on those warm-up steps (the steps that led it to
    the start state: for a night's seal, building the shelter), added to every update outside the value warm-up;
    0 = they only warm the memory."""
    max_demo_steps: int = 1000
    """Steps the demonstrator gets to reach the mark; a world where it does not (or dies) is replaced by the next
    world derived from the episode's seed."""
    tries: int = 10
    """Worlds tried per episode before the run stops with one line (a task the demonstrator cannot finish)."""
    lead: str = "demonstrator"
    """Who plays the world from its reset. "demonstrator": the demonstrator, the whole way to the mark. "policy": the
    acting policy plays its own day first, told a training prompt of one of `lead_tasks` (drawn per world tried) under
    the run's planner, until the first dark step (light below the demonstrator's `night_daylight`); the
    demonstrator takes over from that very state, its memory starting there, and plays to the mark; k then counts
    back from the mark as before (a k beyond the demonstrator's part starts in the policy's own day). Why: the
    agent's nights begin at its own dusk, where a shelter is usually within the demonstrator's reach (median 17-26
    steps), while the demonstrator's own dusk (prepared, and where it chose to be) is a state the agent never
    reaches (docs/evaluation.md, "From the agent's own dusk"). Needs `until` "walled_in_dark". A world is
    replaced when the policy dies before dusk too, and each world tried draws its own lead task, so give such runs
    more `tries` (the measured run used 40: its policy reached dusk and a seal in about half the worlds)."""
    lead_tasks: list[str] = field(default_factory=list)
    """The day tasks the leading policy is told (`lead` "policy"); empty = the run's tasks outside `tasks`."""
    demonstrator: dict[str, Any] = field(default_factory=dict)
    """DemonstratorConfig fields of the demonstrator that plays to the mark (noise 0 is forced; mode task unless
    given), e.g. {pocket_shelter: true} for the shorter shelter, or {mode: free} for free play, whose night is
    spent as the data's (with "walled_in_dark": the start states of its first night's seal; a task-mode
    demonstrator asked to sleep walls in at once, by daylight)."""


@dataclass
class PPOConfig:
    """A PPO run: K iterations of (complete episodes from instructions, GAE, clipped PPO + KL to the start)."""

    out: str = "runs/ppo"
    """Run directory: ppo_config.json, checkpoints/, tensorboard/, ppo_summary.json, bundle/."""
    bundle: str = ""
    """Agent bundle to start from (its policy is also the frozen KL anchor); needs an embedder for the prompts."""
    suite: str = ""
    """Task suite file the tasks and their success predicates come from; empty = the default Crafter suite."""
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    """Suite task names trained on; episode g of the run (counted over iterations) gets tasks[g % len(tasks)]."""
    task_weights: dict[str, int] = field(default_factory=dict)
    """Episodes of a task per round of the schedule (default 1 each), e.g. {collect_coal: 4}: PPO spends more of
    its budget where the agent is weakest while it still plays every task (training on the hard tasks alone made
    the others fall: rung 6b in docs/results.md)."""
    world: str = ""
    """World to play; empty = the bundle's world. Its actions and frame size must fit the policy."""
    world_config: dict[str, Any] = field(default_factory=dict)
    """Options for `aimc.envs.make` over the bundle's world_config (e.g. {length: 10000})."""
    max_steps: int = 500
    """Step cap per episode (a time-limit truncation: the value estimate of the next state is bootstrapped)."""
    stop_on_success: bool = True
    """End an episode at the step its task succeeds (a terminal state: nothing more to earn), so the return
    rewards finishing sooner only through the discount."""
    iterations: int = 30
    """K: iterations (play, then update); may grow on resume."""
    episodes_per_iteration: int = 48
    """Complete episodes played per iteration (an iteration never leaves an episode in flight)."""
    envs: int = 48
    """World slots played in lockstep: the policy acts for all of them in one batched forward per step. As many
    as `episodes_per_iteration` is fastest: the failing episodes then all run to `max_steps` side by side
    instead of leaving a ragged tail of small batches."""
    epochs: int = 2
    """Passes over the iteration's episodes per update."""
    minibatch_episodes: int = 8
    """Episodes per minibatch (one optimiser step each); each is replayed from the policy's initial state."""
    chunk_len: int = 32
    """Truncated BPTT: an episode is replayed in chunks of this many steps, the recurrent state carried
    (detached) from one chunk to the next, as in the BC trainer (trunc_t 64). 32 runs the update ~1.4x faster
    per frame on CPU than 64 (smaller activations stay in cache); gradients then reach 32 steps back."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip: float = 0.2
    """PPO ratio clip ε."""
    lr: float = 3e-5
    """Adam learning rate of the policy (VPT's RL fine-tuning used 2e-5 on a far larger network)."""
    lr_final: float | None = None
    """Anneal the policy's learning rate linearly from `lr` at iteration 1 to this at iteration
    `lr_anneal_iterations`, then hold it; None = `lr` throughout. A distilled student moves fast while it is far
    from its teacher and settles later (the one-run student of preset ppo-distill: 3e-4 to 1e-4)."""
    lr_anneal_iterations: int = 0
    """Length of the anneal in iterations (its own setting, not `iterations`, so extending a finished run on
    resume leaves the learning rate of every iteration already run as it was)."""
    value_lr: float | None = 1e-3
    """Learning rate of the value head's linear layer; None = `lr`. The BC policy's value head is untrained,
    so it learns faster than the policy it reads."""
    vf_coef: float = 0.5
    """Weight of the value loss (MSE in the value head's normalised space)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (0: the KL anchor already keeps the policy from collapsing)."""
    kl_coef: float = 0.2
    """ρ_1: weight of KL(π_θ ‖ π_anchor) (summed over action heads) in iteration 1; 0 = no anchor."""
    kl_decay: float = 0.97
    """ρ_k = kl_coef · kl_decay^(k-1): the anchor loosens as VPT's does; 1.0 = constant."""
    pg_coef: float = 1.0
    """Weight of the clipped surrogate (the reward's term); 0 with `teacher_coef` > 0 = pure distillation."""
    teacher_coef: float = 0.0
    """Weight of KL(π_teacher ‖ π_θ) (summed over action heads) on the rollouts' own states: on-policy distillation,
    DAgger with the teacher's action distributions as its labels. The teacher (`teacher`), frozen, acts alongside
    the trained policy in the rollouts on the same frames (at its own frame size) and goals, with its own bundle's
    guidance scale, its memory following the trained policy's episode. 0 = no teacher."""
    teacher: str = ""
    """Agent bundle whose policy teaches (`teacher_coef`); empty = the starting bundle's own policy as it is. Another
    bundle must read goals from the same embedder and act over the same actions (e.g. a second distillation run
    that starts from a student and keeps its teacher)."""
    frame_size: int | None = None
    """Train a student that reads square frames of this size instead of the bundle policy's (e.g. 32 for 64): the
    start policy is the bundle's network with the dense layer after its last conv stack pooled to the smaller map
    (`aimc.policy.vpt.student`). Acting at 32 costs about a third of 64 per step on a CPU; with `teacher_coef` the
    bundle's own policy teaches it (preset ppo-distill). None = the bundle's frame size."""
    value_warmup_iterations: int = 1
    """First iterations in which the policy is frozen and only the value head trains (on detached features),
    so the first policy updates use advantages from a value function that has seen returns."""
    grad_clip: float = 1.0
    """Clip the global gradient norm per optimiser step; 0 = off."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward definition (success, death, shaping)."""
    bc: BCAuxConfig = field(default_factory=BCAuxConfig)
    """Auxiliary BC loss on demonstrations (off by default)."""
    expert: ExpertAuxConfig = field(default_factory=ExpertAuxConfig)
    """Auxiliary loss on the scripted expert's labels of the rollouts' states (off by default)."""
    start: StartConfig = field(default_factory=StartConfig)
    """Episodes that start from the scripted demonstrator's states, k steps before a mark (off by default)."""
    planner: str = "none"
    """Prompt chaining while playing (`aimc.eval.planner`): "chain" trains the policy on the sub-instructions the
    shipped agent is given (the next missing prerequisite's instruction, then the prompt), "none" on the prompt
    alone. Each step's goal is recorded, so the update replays what the policy acted on."""
    bundle_planner: str | None = None
    """The planner the written bundle plays with by default (its bundle.json `planner`, what `aimc play` and `aimc
    eval tasks` use unless told otherwise); None = `planner`, or the starting bundle's when `planner` is "none".
    A choice about how the trained agent is played, not about training, so it may change when a finished run is
    resumed: the bundle is written again and nothing is retrained (e.g. trained under "chain", shipped with
    "chain-event", docs/evaluation.md)."""
    cond_scale: float | None = None
    """Classifier-free guidance scale the policy acts (and is trained) with; None = the bundle's. With a scale
    > 0 the policy is the renormalised guided distribution softmax((1+λ)·logp_cond − λ·logp_uncond)."""
    seed: int = 0
    """Seeds the worlds, prompts, action sampling and minibatch order; the same seed gives the same run on CPU."""
    device: str = "cpu"
    """torch device for rollouts and updates."""
    mixed_precision: str = "no"
    """"bf16": the update's forward passes (and the anchor's replay) under bf16 autocast where the hardware
    computes bf16 natively (`aimc.core.precision`; fp32 elsewhere whatever this says). The update is most of an
    iteration's time on CPU (the 90-minute preset: 24 of 38 s), and the BC trainer runs its step ~2x faster this
    way. Rollouts, `logp_old`, the losses, weights and optimiser stay fp32, so the first minibatch's ratio is 1
    only up to bf16 rounding (`ratio_dev_first`). "no" = fp32 throughout."""
    rollout_precision: str = "fp32"
    """What the policy acts in while playing the rollouts: "fp32", or "bf16" (autocast where the device computes
    it natively; `aimc.policy.Agent`). Acting is about 1.25x faster that way on an AMX CPU, and `logp_old` then
    comes from the bf16 forward, so with an fp32 update the first ratio is 1 only up to bf16 rounding."""
    threads: int = 1
    """torch CPU threads for the whole run. 1 by default: acting runs many small ops per step, and on a 2-core
    machine that anything else also uses, a second OpenMP thread stalls in barriers (measured: rollouts 15x and
    updates 6x slower with 2 threads while one other process ran). Try 2 only on an otherwise idle machine.
    The same seed gives the same numbers only at the same thread count."""
    rollout_workers: int = 1
    """Processes that play the rollouts (`aimc.finetune.ppo_workers`), each with `envs / rollout_workers` world
    slots, its own copy of the policy and one torch thread; the update stays in the trainer with `threads`.
    2 on a 2-core machine plays the worlds' Python steps on both cores (rollouts about half of an iteration at
    `threads` 2). 1 = in the trainer's process. Like `threads`, it changes results only by float rounding."""

    def __post_init__(self) -> None:
        check_tasks(self.tasks, self.suite)
        if not isinstance(self.task_weights, dict):
            raise ConfigError(f"task_weights: expected a mapping task -> episodes per round, got {self.task_weights!r}")
        for task, w in self.task_weights.items():
            if task not in self.tasks:
                raise UnknownNameError(f"task_weights: {task!r} is not one of the run's tasks ({', '.join(self.tasks)})")
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise ConfigError(f"task_weights.{task}: expected a whole number >= 1, got {w!r}")
        for name in ("iterations", "episodes_per_iteration", "envs", "epochs", "minibatch_episodes", "chunk_len",
                     "max_steps", "threads", "rollout_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rollout_workers > self.envs:
            raise ConfigError(f"rollout_workers ({self.rollout_workers}) must be <= envs ({self.envs}): each worker "
                              "plays at least one world slot")
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision: expected 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.rollout_precision not in ACTING_PRECISIONS:
            raise ConfigError(f"rollout_precision: expected {' or '.join(map(repr, ACTING_PRECISIONS))}, "
                              f"got {self.rollout_precision!r}")
        if self.value_warmup_iterations < 0 or self.seed < 0:
            raise ConfigError("value_warmup_iterations and seed must be >= 0")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.clip < 1.0:
            raise ConfigError(f"clip must be in (0, 1), got {self.clip}")
        if self.lr <= 0 or (self.value_lr is not None and self.value_lr <= 0):
            raise ConfigError(f"lr and value_lr must be > 0, got {self.lr} and {self.value_lr}")
        if self.lr_final is not None and (self.lr_final <= 0 or self.lr_anneal_iterations < 2):
            raise ConfigError(f"lr_final needs a rate > 0 and lr_anneal_iterations >= 2 (the iteration it is reached "
                              f"at), got {self.lr_final} and {self.lr_anneal_iterations}")
        if self.reward.health < 0:
            raise ConfigError(f"reward.health must be >= 0 (0 = off), got {self.reward.health}")
        if self.reward.approach < 0:
            raise ConfigError(f"reward.approach must be >= 0 (0 = off), got {self.reward.approach}")
        if self.reward.shelter < 0:
            raise ConfigError(f"reward.shelter must be >= 0 (0 = off), got {self.reward.shelter}")
        if self.frame_size is not None and (isinstance(self.frame_size, bool) or not isinstance(self.frame_size, int)
                                            or self.frame_size < 1):
            raise ConfigError(f"frame_size: expected a whole number of pixels >= 1 or null, got {self.frame_size!r}")
        if self.frame_size is not None and self.teacher_coef == 0:
            raise ConfigError("frame_size makes a student that no longer acts as the bundle's policy; give it a teacher "
                              "(--set teacher_coef=1, or --preset ppo-distill)")
        for name in ("vf_coef", "ent_coef", "kl_coef", "kl_decay", "grad_clip", "pg_coef", "teacher_coef"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.cond_scale is not None and self.cond_scale < 0:
            raise ConfigError(f"cond_scale must be >= 0, got {self.cond_scale}")
        from aimc.eval.planner import PLANNER_NAMES

        if self.planner not in PLANNER_NAMES:
            raise ConfigError(f"planner: expected one of {', '.join(PLANNER_NAMES)}, got {self.planner!r}")
        if self.bundle_planner is not None and self.bundle_planner not in PLANNER_NAMES:
            raise ConfigError(f"bundle_planner: expected one of {', '.join(PLANNER_NAMES)}, got {self.bundle_planner!r}")
        if self.bc.coef < 0 or self.bc.segments < 1:
            raise ConfigError(f"bc.coef must be >= 0 and bc.segments >= 1, got {self.bc.coef} and {self.bc.segments}")
        if self.bc.coef > 0 and not self.bc.data:
            raise ConfigError("bc.coef > 0 needs demonstrations: --set bc.data=[STORE] (an `aimc collect` store)")
        if self.expert.coef < 0:
            raise ConfigError(f"expert.coef must be >= 0, got {self.expert.coef}")
        if not isinstance(self.expert.demonstrator, dict):
            raise ConfigError(f"expert.demonstrator: expected a mapping of demonstrator options, got "
                              f"{self.expert.demonstrator!r}")
        if not isinstance(self.world_config, dict):
            raise ConfigError(f"world_config: expected a mapping of world options, got {self.world_config!r}")
        check_start(self.start, self.tasks)


def _back_range(value: Any, name: str) -> None:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or not 0 <= value[0] <= value[1]):
        raise ConfigError(f"start.{name}: expected [lo, hi], whole numbers with 0 <= lo <= hi, got {value!r}")


def check_start(start: StartConfig, tasks: list[str]) -> None:
    """One line for a bad `start` section (torch-free; the world and the demonstrator are checked in `prepare`)."""
    if not 0.0 <= start.share <= 1.0:
        raise ConfigError(f"start.share must be in [0, 1] (0 = off), got {start.share}")
    unknown = [t for t in start.tasks if t not in tasks]
    if unknown:
        raise UnknownNameError(f"start.tasks: {unknown[0]!r} is not one of the run's tasks ({', '.join(tasks)})")
    if start.until not in START_MARKS:
        raise ConfigError(f"start.until: expected one of {', '.join(START_MARKS)}, got {start.until!r}")
    _back_range(start.back, "back")
    if start.back_final is not None:
        _back_range(start.back_final, "back_final")
        if start.anneal_iterations < 2:
            raise ConfigError(f"start.back_final needs start.anneal_iterations >= 2 (the iteration it is reached at), "
                              f"got {start.anneal_iterations}")
    if start.success_at_mark and min(start.back[0], *(start.back_final or start.back)) < 1:
        raise ConfigError("start.success_at_mark needs k >= 1 (the lower ends of start.back and start.back_final): at "
                          "k = 0 an episode starts at the mark and would succeed without acting")
    if start.extra_steps is not None and start.extra_steps < 1:
        raise ConfigError(f"start.extra_steps must be >= 1 or null, got {start.extra_steps}")
    for name in ("max_demo_steps", "tries"):
        if getattr(start, name) < 1:
            raise ConfigError(f"start.{name} must be >= 1, got {getattr(start, name)}")
    if start.warmup < 0:
        raise ConfigError(f"start.warmup must be >= 0, got {start.warmup}")
    if start.bc_coef < 0:
        raise ConfigError(f"start.bc_coef must be >= 0 (0 = off), got {start.bc_coef}")
    if start.lead not in START_LEADS:
        raise ConfigError(f"start.lead: expected one of {', '.join(START_LEADS)}, got {start.lead!r}")
    unknown = [t for t in start.lead_tasks if t not in tasks]
    if unknown:
        raise UnknownNameError(f"start.lead_tasks: {unknown[0]!r} is not one of the run's tasks ({', '.join(tasks)})")
    if start.lead == "policy":
        if start.until != "walled_in_dark":
            raise ConfigError(f"start.lead=policy hands the policy's day to the demonstrator at its first dark step, "
                              f"so it needs start.until=walled_in_dark, got {start.until!r}")
        if not lead_tasks(start, tasks):
            raise ConfigError("start.lead=policy needs a day task for the policy to play: set start.lead_tasks, or "
                              "give the run tasks beyond start.tasks")
    if not isinstance(start.demonstrator, dict):
        raise ConfigError(f"start.demonstrator: expected a mapping of demonstrator options, got {start.demonstrator!r}")


def lead_tasks(start: StartConfig, tasks: list[str]) -> list[str]:
    """The tasks a leading policy is told (`StartConfig.lead_tasks`, else the run's tasks outside the start tasks)."""
    return list(start.lead_tasks) or [t for t in tasks if start.tasks and t not in start.tasks]


def back_range_at(start: StartConfig, k: int) -> tuple[int, int]:
    """The [lo, hi] range of k in iteration k >= 1 (see `StartConfig.back_final`)."""
    if start.back_final is None:
        return int(start.back[0]), int(start.back[1])
    frac = min(1.0, (k - 1) / (start.anneal_iterations - 1))
    lo, hi = (round(a + frac * (b - a)) for a, b in zip(start.back, start.back_final, strict=True))
    return int(lo), int(max(lo, hi))


def kl_coef_at(cfg: PPOConfig, k: int) -> float:
    """ρ_k for iteration k >= 1 (see `PPOConfig.kl_decay`)."""
    if k < 1:
        raise ConfigError(f"PPO iterations count from 1, got {k}")
    return float(cfg.kl_coef * cfg.kl_decay ** (k - 1))


def lr_at(cfg: PPOConfig, k: int) -> float:
    """The policy's learning rate in iteration k >= 1 (see `PPOConfig.lr_final`)."""
    if cfg.lr_final is None:
        return float(cfg.lr)
    frac = min(1.0, (k - 1) / (cfg.lr_anneal_iterations - 1))
    return float(cfg.lr + frac * (cfg.lr_final - cfg.lr))


def check_tasks(tasks: list[str], suite: str = "") -> None:
    """One line naming the suite's tasks for an empty list, a duplicate or an unknown name."""
    from aimc.eval.tasks import load_suite

    names = [t.name for t in load_suite(suite or None).tasks]
    if not tasks:
        raise ConfigError(f"tasks: give at least one task; valid tasks: {', '.join(names)}")
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise UnknownNameError(f"unknown task {unknown[0]!r}; valid tasks: {', '.join(names)}")
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise ConfigError(f"tasks: {dup} listed twice; list each task once")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob(f"{PRESET_PREFIX}*.yaml"))


def load_ppo_config(preset: str | None = None, overrides: list[str] | None = None, **fields_: Any) -> PPOConfig:
    """Defaults <- preset YAML (a name in presets/ or a .yaml path) <- `fields_` (CLI flags) <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        layers.append(preset_path(preset, PRESET_DIR, preset_names(), "PPO"))
    layers.append({k: v for k, v in fields_.items() if v is not None})
    return build_config(PPOConfig, *layers, overrides=overrides)
