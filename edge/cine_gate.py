"""The frame-quality gate of ``cnscreen --cine``: a generated cine is shown only when every frame shows a heart.

A denoiser that has not learnt a view's anatomy draws noise blobs; shown beside a screening result they would look
like a scan. :func:`gate_cine` checks every frame with :func:`cardiacnets.diffusion.frame_quality.cine_quality` (the
blood-pool segmentation that measures the real cines) and, for a cine that fails, says why in one line: in the
result's ``cine`` info (``refused``) and, in place of the animation, as a still image carrying the same line.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from cardiacnets.diffusion.frame_quality import cine_quality


def gate_cine(cine: np.ndarray, view: str, info: dict[str, Any]) -> str | None:
    """Check a generated cine ``(F, H, W)`` of ``view``; record ``frames_with_heart`` (``"k/F"``) and, when a frame
    fails, ``refused`` (the one-line reason) in ``info``. Returns the reason, or None when the cine may be shown."""
    quality = cine_quality(cine, view)
    info["frames_with_heart"] = f"{quality.frames_with_heart}/{quality.n_frames}"
    reason = quality.reason()
    if reason is not None:
        info["refused"] = f"not shown: {reason}; the generator of this view does not draw a heart reliably"
    return info.get("refused")


def refusal_image(reason: str, width: int = 240) -> bytes:
    """A still GIF with ``reason`` written on it, shown where the refused cine would be."""
    from PIL import Image, ImageDraw

    words, lines, line = reason.split(), [], ""
    for word in words:  # wrap at about 38 characters: the default bitmap font is 6 pixels wide
        if line and len(line) + 1 + len(word) > width // 6 - 2:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    image = Image.new("L", (width, 16 + 12 * len(lines)), color=235)
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((6, 8 + 12 * i), text, fill=20)
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    return buffer.getvalue()
