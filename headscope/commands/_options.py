"""Option decorators shared by every command, so flags mean the same thing everywhere."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ..dtypes import AUTO_NOTE, DEFAULT_DTYPE, DTYPE_HELP, DTYPES

F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = (
    "Model alias (see `headscope models`), Hugging Face id, or local checkpoint directory. "
    "Default: the bundled smollm2-135m."
)


def model_options(func: F) -> F:
    """--model, --device, --dtype, --revision."""
    func = click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of the model.")(func)
    func = dtype_option()(func)
    func = click.option("--device", default="auto", show_default=True,
                        help="auto (all GPUs via device_map=auto, else CPU), cpu, cuda, cuda:N, balanced.")(func)
    func = click.option("--model", "model_name", default="smollm2-135m", show_default=True, help=MODEL_HELP)(func)
    return func


class BatchSizeParam(click.ParamType):
    """``--batch-size``: ``auto`` or a positive integer (see :mod:`headscope.batch_size`)."""

    name = "auto|N"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from ..batch_size import parse_batch_size

        try:
            return parse_batch_size(value)
        except ValueError as err:
            self.fail(str(err).removeprefix("--batch-size "), param, ctx)


BATCH_AUTO_HELP = ("auto (the default) picks the batch from free GPU memory and the prompts' lengths "
                   "(1 on CPU); or N.")
def _note_auto(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value == "auto":
        click.echo(AUTO_NOTE, err=True)  # its meaning changed: say so where it is typed
    return value


def dtype_option(default: str | None = DEFAULT_DTYPE, help: str = DTYPE_HELP) -> Callable[[F], F]:
    """--dtype, named as in transformers (headscope/dtypes.py); ``auto`` is the checkpoint's dtype."""
    return click.option("--dtype", default=default, show_default=default is not None, type=click.Choice(DTYPES),
                        callback=_note_auto, help=help)


# DySCO's token selection, named so that no transformers user reads HF's sampling filters
# (top_k / top_p of model.generate); the former spellings still work (issue 24).
SELECTION_FLAGS = {"top_k": ("--select-top-k", "--top-k"), "top_p": ("--select-top-p", "--top-p")}
SELECTION_WHY = "DySCO's token selection, not the sampling filter of transformers"


def renamed_option(old: str, new: str, param: str, why: str, **kw: Any) -> Callable[[F], F]:
    """The former spelling ``old`` of the option ``new`` (parameter ``param``): hidden, still works,
    says the new name on stderr. The option ``new`` takes ``callback=take_renamed``."""

    def remember(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value is None:
            return
        if ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{old} is the former name of {new}; give {new} only.")
        click.echo(f"Note: {old} is now {new} ({why}); the old name still works.", err=True)
        ctx.meta[f"headscope.renamed.{param}"] = value
        if param in ctx.params:  # the new option was processed first (with its default)
            ctx.params[param] = value

    return click.option(old, f"_former_{param}", default=None, hidden=True, expose_value=False, callback=remember,
                        **kw)


def take_renamed(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of an option that has a :func:`renamed_option`: the former spelling's value if given."""
    key = f"headscope.renamed.{param.name}"
    if key in ctx.meta and ctx.get_parameter_source(str(param.name)) is ParameterSource.COMMANDLINE:
        raise click.UsageError(f"{param.opts[0]} was given twice, once by its former name; give {param.opts[0]} only.")
    return ctx.meta.get(key, value)


def seed_option(func: F) -> F:
    return click.option("--seed", default=0, show_default=True, type=int,
                        help="Random seed: same seed, same data and same results.")(func)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: shown as one line, never a traceback."""
    from .._outputs import OutputInUseError
    from ..models import ModelNotFoundError

    return (ValueError, FileNotFoundError, FileExistsError, PermissionError, ModelNotFoundError, OutputInUseError)


# A full disk or an exhausted quota: what the user must fix is the space, not headscope's input.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def run_user_errors(fn: Callable[[], Any], *, writing: str | os.PathLike[str] | None = None,
                    rerun: str = "") -> Any:
    """Call ``fn``; turn user errors into ``click.ClickException`` (exit 1, one clean line).

    ``writing`` (the command's output) and ``rerun`` (what running the same command again will
    do) make a full disk one line too: the path and the way out, never a traceback.
    """
    try:
        return fn()
    except user_errors() as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        if err.errno not in _NO_SPACE:
            raise
        where = err.filename or writing or "an output file"
        raise click.ClickException(
            f"No space left on the device while writing {where} ({os.strerror(err.errno)}). Free some space "
            f"and run the same command again{': ' + rerun if rerun else '.'}") from err
