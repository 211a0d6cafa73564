"""The `aimc` console script: one typer app, one module per verb, expected errors as one clear line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from aimc.core.errors import AimcError

INTERRUPTED = "interrupted; finished work is kept and the command can be resumed"

ARGV: list[str] = []
"""The command line `main` was given (without the program name): a supervised command reruns it as is."""

CRASH_RETRIES_HELP = ("Rerun the command (it resumes) after a native crash of its process, at most this many "
                      "times in a row without new checkpoints (default: $AIMC_CRASH_RETRIES or 3; 0 runs it in this process).")


def supervised(what: str, retries: int | None, out: Path | None = None) -> None:
    """Start of a resumable command: return to run the work here, or run it in a supervised child process
    (aimc.core.supervise; `out`, its run directory, tells a crash after new checkpoints from one without) and exit
    with that child's code."""
    from aimc.core.supervise import supervise_here

    rc = supervise_here(ARGV, what, retries, out)
    if rc is not None:
        raise typer.Exit(rc)


def one_line(e: BaseException) -> str:
    """An expected error's message. One raised in a torch DataLoader worker (e.g. a frame cache hitting a full disk)
    reaches the main process re-raised as the same type with "Caught X in DataLoader worker process N" and the
    worker's whole traceback as its message: keep only the original message, its last line."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
        name, sep, rest = last.partition(": ")
        return rest if sep and name.replace(".", "").replace("_", "").isalnum() else last
    return text


class AimcGroup(TyperGroup):
    """The root command group: expected errors become one line, Ctrl-C a resumable stop.

    A failed write that reached here as a plain OSError (disk full, quota, read-only filesystem:
    `WRITE_ERRNOS`) is one `error:` line too, with exit code 2; the library turns the writes it knows into a
    `WriteError` naming the output, this catches the rest.

    Usage mistakes (unknown option or command, missing argument) are left to the framework's own standalone
    handling, which prints the usage hint and one `Error:` line with exit code 2. That works with whichever
    click typer brings (typer >= 0.22 vendors its own copy as `typer._click`, so catching `click.exceptions`
    here would miss them). Only our own exceptions are translated, around the invocation of any
    (sub)command, because nested groups run inside the root group's `invoke`.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AimcError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            ctx.exit(2)
        except OSError as e:
            from aimc.core.io import WRITE_ERRNOS, write_error

            if e.errno not in WRITE_ERRNOS:
                raise
            print(f"error: {write_error(e, e.filename)}", file=sys.stderr)
            ctx.exit(2)
        except KeyboardInterrupt:
            print(INTERRUPTED, file=sys.stderr)
            ctx.exit(130)


app = typer.Typer(
    name="aimc",
    cls=AimcGroup,
    help="Text-to-behaviour agents for Minecraft-like worlds (VPT + MineCLIP + STEVE-1 recipe).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
train_app = typer.Typer(help="Train a model (embedder, policy, prior).", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate embedders, priors and policies.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert official checkpoints and recordings to aimc's formats.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
study_app = typer.Typer(help="Studies that run a grid of trainings and evaluations into one report.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")
app.add_typer(study_app, name="study")


def _register_commands() -> None:
    """Import command modules; each attaches its commands to the apps above."""
    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(mod)


COMMAND_MODULES: list[str] = [
    "aimc.cli.collect",
    "aimc.cli.demo",
    "aimc.cli.pipeline",
    "aimc.cli.embed",
    "aimc.cli.convert_mineclip",
    "aimc.cli.convert_contractor",
    "aimc.cli.train_embedder",
    "aimc.cli.eval_embedder",
    "aimc.cli.convert_vpt",
    "aimc.cli.inspect",
    "aimc.cli.train_policy",
    "aimc.cli.train_dagger",
    "aimc.cli.train_ppo",
    "aimc.cli.play",
    "aimc.cli.serve",
    "aimc.cli.train_prior",
    "aimc.cli.eval_tasks",
    "aimc.cli.eval_prior",
    "aimc.cli.eval_goal_gain",
    "aimc.cli.study",
]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app in the framework's standalone mode and return its exit code.

    `AimcError` -> `error: <message>`, exit 2 (see `AimcGroup`); usage mistakes -> usage + `Error:` line,
    exit 2; Ctrl-C -> exit 130. The process exit code is returned instead of exiting so tests can call it.
    """
    global ARGV
    from aimc.core.native import configure_native_runtime

    configure_native_runtime()  # before any oneDNN primitive: see aimc.core.native
    ARGV = list(sys.argv[1:] if argv is None else argv)
    _register_commands()
    try:
        app(args=argv, prog_name="aimc", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)  # sys.exit("message") convention
        return 1
    except KeyboardInterrupt:  # pressed outside a command's invocation (e.g. while parsing)
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return 0
