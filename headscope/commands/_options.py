"""Option decorators shared by every command, so flags mean the same thing everywhere."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = (
    "Model alias (see `headscope models`), Hugging Face id, or local checkpoint directory. "
    "Default: the bundled smollm2-135m."
)


def model_options(func: F) -> F:
    """--model, --device, --dtype, --revision."""
    func = click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of the model.")(func)
    func = click.option("--dtype", default="auto", show_default=True,
                        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
                        help="Weights dtype; auto = bfloat16 on GPU, float32 on CPU.")(func)
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
