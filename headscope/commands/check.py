"""``headscope check``: read every byte of capture runs and report each part OK or damaged."""

from __future__ import annotations

import click

from ._options import run_user_errors


@click.command("check")
@click.argument("captures", nargs=-1, required=True, type=click.Path())
def check_command(captures: tuple[str, ...]) -> None:
    """Verify every part of capture runs: each file against the SHA-256 recorded when it was
    written (every byte is read), then every array decoded. Prints one line per part; exits
    with status 1 when a part is damaged or missing.

    Opening a capture (rank, cluster, plot) checks only that every file is there with its size;
    bytes changed in place are found here, or with `headscope rank --verify`.

    \b
    Example:
      headscope check runs/needle
    """
    from ..capture_check import check_capture

    bad = []
    for capture in captures:
        statuses = run_user_errors(lambda: check_capture(capture))  # noqa: B023 (called at once)
        for s in statuses:
            click.echo(f"{capture}: {s.name}  {'OK' if s.ok else ('MISSING' if s.missing else 'DAMAGED')}"
                       f"{'' if s.ok else ': ' + s.problem}")
        n_bad = sum(not s.ok for s in statuses)
        click.echo(f"{capture}: {len(statuses) - n_bad} of {len(statuses)} parts OK.")
        if n_bad:
            bad.append(f"{capture} ({n_bad} of {len(statuses)} parts)")
    if bad:
        raise click.ClickException(
            f"Damaged or missing parts in {', '.join(bad)}. Delete each damaged part folder and rerun the same "
            "`headscope calibrate` command: it recomputes only the parts that are not there.")


COMMANDS = [check_command]
