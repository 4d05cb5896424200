"""What every command group shares: the consoles, common options, the error guard."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

# results; piped output (logs, CI) gets a fixed width instead of rich's 80 columns
out = Console() if sys.stdout.isatty() else Console(width=120)
err = Console(stderr=True)  # logs, progress, errors

# Help texts are rendered as Markdown: placeholders go in backticks, or the
# renderer takes "<preset>" for an HTML tag and drops it.
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Data set: `ml-100k` (fetched through PyPI), `synthetic-<preset>[-seed<N>]` "
        "(presets: tiny, small, seasons, medium, ml-25m, xl-catalog), or a path to a "
        "GroupLens folder "
        "(ml-100k/1m/10m/20m/25m/latest), a RecBole atomic folder, or a CSV/TSV/Parquet log.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a model option, `KEY=VALUE` (repeatable), e.g. `--set factors=64`."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry",
        help="Model registry folder (default `$PRIMETIME_REGISTRY_DIR`, else "
        "`$PRIMETIME_HOME/models`).",
    ),
]
VersionOpt = Annotated[
    str | None,
    typer.Option(
        "--version",
        help="Registry version, e.g. `v3` (default: the promoted one, else the newest).",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red error line on stderr and exit with ``code``."""
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(code)


def guard(fn: Any) -> Any:
    """Turn expected user errors into one red line and exit code 2."""
    from primetime.data.errors import DataFormatError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:  # a RuntimeError in click: an exit already decided, not an error
            raise
        except (DataFormatError, FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
            # KeyError's str() is the repr of its message; show the message itself
            fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))

    return wrapper


def registry(root: Path | None) -> Any:
    """The model registry: ``root``, else the service's setting, else the default."""
    from primetime.registry import ModelRegistry
    from primetime.service.settings import Settings

    return ModelRegistry(root or Settings().registry_dir)


def split_models(models: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(n.strip() for n in models.split(",") if n.strip())


def served_blend_facts(model: Any, prepared: Any) -> dict[str, Any]:
    """``{"served_blend": ...}`` for the version's meta, chosen on valid around the
    selection fit (:func:`primetime.served_study.served_blend_meta`), with a line on the
    pick; empty without a valid part, and for a rating model."""
    from primetime.pipeline.blend import SERVED_BLEND
    from primetime.served_study import served_blend_meta

    with err.status(f"choosing the served blend of {model.name} on valid…"):
        facts = served_blend_meta(model, prepared)
    if not facts:
        if model.task == "topn":
            err.print("no valid part: the version is served with the default blend")
        return {}
    picked = facts[SERVED_BLEND]
    w = picked["weights"]
    shown = ", ".join(
        f"{k} {w[k]:g}" for k in ("realtime", "content", "popularity", "trending", "diversity")
    )
    err.print(
        f"served blend (valid): {shown} · valid NDCG@10 {picked['valid']['NDCG@10']:.4f} "
        f"served, {picked['bare_valid']['NDCG@10']:.4f} bare"
    )
    return facts
