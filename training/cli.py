"""``cntrain``: data generation, conversion and every training stage of CardiacNets.

Thin CLI: each sub-command parses its flags and calls one library or training function. Commands are registered by
the modules listed in ``_COMMAND_MODULES`` (one per area), each exposing ``register(app)``.
"""

from __future__ import annotations

import importlib

from cardiacnets.cli_support import App

app = App(
    prog="cntrain",
    add_completion=False,
    no_args_is_help=True,
    help="Train CardiacNets stages on the synthetic cohort or on converted UK Biobank / MIMIC-IV-ECG data.",
)

_COMMAND_MODULES = (
    "cardiacnets.training.cli_synth",
    "cardiacnets.training.cli_data",
    "cardiacnets.training.cli_stages",
    "cardiacnets.training.cli_diffusion",
    "cardiacnets.training.cli_finetune",
    "cardiacnets.training.cli_external",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="cntrain", standalone_mode=True)


if __name__ == "__main__":
    main()
