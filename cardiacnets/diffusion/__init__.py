"""ECG2CMR: ECG-conditioned latent video diffusion generating cine CMR (diffusers UNet3D + AutoencoderKL).

Submodules: :mod:`~cardiacnets.diffusion.vae` (frame autoencoder), :mod:`~cardiacnets.diffusion.unet` (denoiser),
:mod:`~cardiacnets.diffusion.schedulers`, :mod:`~cardiacnets.diffusion.pipeline` (``EcgToCmrPipeline``),
:mod:`~cardiacnets.diffusion.io` (``save_cine``) and :mod:`~cardiacnets.diffusion.evaluate` (faithfulness; numpy and
scipy only). Importing this package imports none of them.
"""
