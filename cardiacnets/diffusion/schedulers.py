"""Noise schedulers for ECG2CMR (diffusers): the paper's linear beta schedule 1e-4..0.02 with epsilon prediction.

Training adds noise with the DDPM scheduler's ``add_noise``; sampling uses DDIM (the paper's ~100 steps) or
DPM-Solver++ (2nd order multistep, the default, ~20 steps) built from the same training config, both with "trailing"
timestep spacing so the first sampling step starts at the last training timestep.
"""

from __future__ import annotations

from typing import Any

from cardiacnets.errors import InputError

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02

#: Sampler name -> default number of inference steps.
DEFAULT_STEPS: dict[str, int] = {"ddim": 100, "dpm": 20}


def training_scheduler_config() -> dict[str, Any]:
    """Config of the training noise schedule (linear betas, epsilon prediction)."""
    return {
        "num_train_timesteps": NUM_TRAIN_TIMESTEPS,
        "beta_start": BETA_START,
        "beta_end": BETA_END,
        "beta_schedule": "linear",
        "prediction_type": "epsilon",
        "clip_sample": False,
    }


def make_training_scheduler(config: dict[str, Any] | None = None) -> Any:
    """A ``DDPMScheduler`` for ``add_noise`` during training."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**(config or training_scheduler_config()))


def make_sampling_scheduler(name: str, config: dict[str, Any] | None = None) -> Any:
    """A sampling scheduler: ``"ddim"`` (DDIM, eta 0) or ``"dpm"`` (DPM-Solver++ 2M) on the training schedule."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    base = dict(config or training_scheduler_config())
    base = {k: v for k, v in base.items() if k in training_scheduler_config()}
    if name == "ddim":
        return DDIMScheduler(**base, set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing")
    if name == "dpm":
        base.pop("clip_sample", None)
        return DPMSolverMultistepScheduler(
            **base, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    raise InputError(f"unknown scheduler {name!r}; choose 'ddim' or 'dpm'")
