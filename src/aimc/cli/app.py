"""The `aimc` console script: one typer app, one module per verb, expected errors as one clear line."""

from __future__ import annotations

import sys

import typer

from aimc.core.errors import AimcError

app = typer.Typer(
    name="aimc",
    help="Text-to-behaviour agents for Minecraft-like worlds (VPT + MineCLIP + STEVE-1 recipe).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model (embedder, policy, prior).", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate embedders, priors and policies.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert official checkpoints to aimc's safetensors format.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(convert_app, name="convert")


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
    "aimc.cli.train_embedder",
    "aimc.cli.eval_embedder",
    "aimc.cli.convert_vpt",
    "aimc.cli.inspect",
    "aimc.cli.train_policy",
    "aimc.cli.play",
    "aimc.cli.train_prior",
    "aimc.cli.eval_tasks",
    "aimc.cli.eval_prior",
]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning AimcError into `error: <message>` and exit code 2."""
    _register_commands()
    try:
        # non-standalone typer returns exit codes instead of exiting (Ctrl-C arrives as 130)
        result = app(args=argv, standalone_mode=False)
    except AimcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and the command can be resumed", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            return 130
        raise
    if isinstance(result, int) and result != 0:
        if result == 130:
            print("interrupted; finished work is kept and the command can be resumed", file=sys.stderr)
        return result
    return 0
