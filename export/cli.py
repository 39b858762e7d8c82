"""``cnexport``: ONNX export, TensorRT engines, model bundles, verification and benchmarks."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Export CardiacNets models and build bundles.")


@app.command()
def version() -> None:
    """Print the toolkit version."""
    from cardiacnets import __version__

    typer.echo(__version__)


def main(argv: Optional[list[str]] = None) -> None:  # noqa: UP007
    app(args=argv, prog_name="cnexport")


if __name__ == "__main__":
    main()
