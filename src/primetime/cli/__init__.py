"""The ``primetime`` command line: one module per command group.

Files and arguments are parsed here only; library code receives typed objects.
Results go to stdout, logs and progress to stderr.

- :mod:`~primetime.cli.common`: consoles, shared options, the error guard;
- :mod:`~primetime.cli.data`: ``data fetch | synth | info | export``;
- :mod:`~primetime.cli.loop`: ``retrain``, ``worker`` (the job system, :mod:`primetime.jobs`);
- :mod:`~primetime.cli.lifecycle`: ``train``, ``evaluate``, ``recommend``;
- :mod:`~primetime.cli.study`: ``benchmark``, ``ablate``, ``search``, ``demo``;
- :mod:`~primetime.cli.catalog`: ``trends``, ``release-plan``, ``season``;
- :mod:`~primetime.cli.service`: ``serve``, ``models …``, ``experiments …``, ``titles add``.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from primetime import __version__
from primetime.cli import catalog, data, lifecycle, loop, service, study
from primetime.cli.common import err, out

app = typer.Typer(
    name="primetime",
    help="Movie and TV-show recommendation: data, models, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
app.add_typer(data.app, name="data")
app.add_typer(service.models_app, name="models")
app.add_typer(service.experiments_app, name="experiments")
app.add_typer(service.titles_app, name="titles")
for group in (lifecycle.app, study.app, catalog.app, service.app, loop.app):
    app.registered_commands.extend(group.registered_commands)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug details to stderr.")
    ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Primetime's command line. Working files live in `$PRIMETIME_HOME` (default
    `./.primetime`)."""
    if version:
        out.print(__version__)
        raise typer.Exit()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


__all__ = ["app"]
