"""Writing generated cines: GIF/MP4 (imageio) with a burned-in synthetic label, NIfTI (nibabel) and NumPy ``.npy``.

Every output is marked as synthetic imagery generated from an ECG: burned into the pixels of GIF/MP4 frames (a banner
under the image), in the NIfTI header's ``descrip`` field, in GIF/MP4 metadata, and in a JSON sidecar
``<file>.json`` written next to every format (the only place an ``.npy`` can carry it).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)

#: The label every generated cine carries (ASCII: it must fit the NIfTI 80-byte descrip and any bitmap font).
SYNTHETIC_LABEL = "AI-generated from ECG - synthetic imagery"

CINE_SUFFIXES = (".gif", ".mp4", ".nii", ".nii.gz", ".npy")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def sidecar_path(path: str | Path) -> Path:
    """Path of the provenance JSON written beside a cine file."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def labelled_frames(cine: np.ndarray, label: str = SYNTHETIC_LABEL, min_width: int = 256) -> np.ndarray:
    """Upscale a cine for viewing and burn ``label`` into a banner under each frame.

    Args:
        cine: ``(F, H, W)`` in [0, 1].
        label: text to burn in.
        min_width: frames are upscaled by an integer factor to at least this width so the text is legible.

    Returns:
        ``(F, H * s + banner, W * s)`` uint8 frames; height and width are multiples of 16 (video codecs).
    """
    from PIL import Image, ImageDraw, ImageFont

    _check_cine(cine)
    f, h, w = cine.shape
    scale = max(1, math.ceil(min_width / w))
    frames = (np.clip(cine, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (F, H*s, W*s)
    width = w * scale
    size = 12
    font = ImageFont.load_default(size=size)
    while size > 6 and ImageDraw.Draw(Image.new("L", (1, 1))).textlength(label, font=font) > width - 4:
        size -= 1
        font = ImageFont.load_default(size=size)
    banner_h = size + 8
    total_h = int(math.ceil((h * scale + banner_h) / 16.0) * 16)
    total_w = int(math.ceil(width / 16.0) * 16)
    banner = Image.new("L", (total_w, total_h - h * scale), 0)
    ImageDraw.Draw(banner).text((2, 3), label, fill=255, font=font)
    banner_arr = np.asarray(banner, dtype=np.uint8)
    out = np.zeros((f, total_h, total_w), dtype=np.uint8)
    out[:, : h * scale, :width] = frames
    out[:, h * scale :, :] = banner_arr
    return out


def _check_cine(cine: np.ndarray) -> None:
    if not isinstance(cine, np.ndarray) or cine.ndim != 3:
        shape = getattr(cine, "shape", None)
        raise InputError(f"a cine must be a numpy array shaped (frames, H, W); got {type(cine).__name__} {shape}")
    if cine.shape[0] < 1 or cine.shape[1] < 2 or cine.shape[2] < 2:
        raise InputError(f"cine shape {cine.shape} is empty or too small")
    if not np.isfinite(cine).all():
        raise InputError("cine contains NaN or infinite values")


def save_cine(
    cine: np.ndarray,
    path: str | Path,
    *,
    fps: float = 25.0,
    pixel_spacing_mm: float = 1.0,
    metadata: dict | None = None,
) -> Path:
    """Write one generated cine, marked as synthetic, by the file suffix.

    Args:
        cine: ``(F, H, W)`` float in [0, 1], frame 0 = end diastole.
        path: ``.gif``, ``.mp4`` (label burned into the frames), ``.nii``/``.nii.gz`` (label in ``descrip``) or
            ``.npy``. A ``<path>.json`` sidecar with the label and provenance is written for every format.
        fps: playback rate for GIF/MP4 (the paper's 50 frames span one cardiac cycle of ~1 s).
        pixel_spacing_mm: in-plane spacing written to the NIfTI header.
        metadata: extra JSON-serialisable provenance (seed, scheduler, steps) for the sidecar.

    Returns:
        The written path.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in CINE_SUFFIXES:
        raise InputError(f"cannot write a cine to {path.name!r}: use one of {', '.join(CINE_SUFFIXES)}")
    cine = np.asarray(cine, dtype=np.float32)
    _check_cine(cine)
    if not fps > 0:
        raise InputError(f"fps must be positive; got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, cine, allow_pickle=False)
    elif suffix in (".nii", ".nii.gz"):
        _save_nifti(cine, path, fps, pixel_spacing_mm)
    elif suffix == ".gif":
        import imageio.v3 as iio

        frames = labelled_frames(cine)
        iio.imwrite(path, frames, extension=".gif", duration=int(round(1000.0 / fps)), loop=0, comment=SYNTHETIC_LABEL)
    else:  # .mp4
        import imageio.v2 as imageio

        frames = labelled_frames(cine)
        try:
            imageio.mimwrite(
                path,
                list(frames),
                format="FFMPEG",
                fps=fps,
                macro_block_size=16,
                output_params=["-metadata", f"comment={SYNTHETIC_LABEL}"],
            )
        except (ImportError, RuntimeError) as exc:
            raise InputError(f"cannot write MP4 (install imageio-ffmpeg, or use .gif): {exc}") from exc
    side = {
        "synthetic": True,
        "label": SYNTHETIC_LABEL,
        "file": path.name,
        "shape": list(cine.shape),
        "axes": "frames, height, width",
        "value_range": [0.0, 1.0],
        "fps": fps,
        **(metadata or {}),
    }
    sidecar_path(path).write_text(json.dumps(side, indent=2) + "\n")
    logger.info("wrote synthetic cine %s", path.name)
    return path


def _save_nifti(cine: np.ndarray, path: Path, fps: float, spacing: float) -> None:
    import nibabel as nib

    data = np.transpose(cine, (2, 1, 0))[:, :, None, :]  # (W, H, 1, F): x, y, z, t
    affine = np.diag([spacing, spacing, spacing, 1.0])
    image = nib.Nifti1Image(data.astype(np.float32), affine)
    header = image.header
    header["descrip"] = SYNTHETIC_LABEL.encode("ascii")
    header["intent_name"] = b"synthetic"
    header.set_xyzt_units(xyz="mm", t="sec")
    zooms = list(header.get_zooms())
    zooms[3] = 1.0 / fps
    header.set_zooms(zooms)
    nib.save(image, str(path))
