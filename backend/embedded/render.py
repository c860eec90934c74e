"""Tiny dependency-light voxel renderer (numpy + PIL) for contact sheets and eyeballing data."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def render_voxels(occ: np.ndarray, size: int = 160, azimuth: float = -35.0, elevation: float = 25.0) -> Image.Image:
    """Orthographic view of occupied voxels (dims x, y, z; Z up), shaded by depth."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    idx = np.argwhere(occ)
    if len(idx) == 0:
        return Image.fromarray(img)
    r = occ.shape[0]
    p = (idx + 0.5) / r - 0.5
    a, e = np.radians(azimuth), np.radians(elevation)
    # camera looks from -Y rotated by azimuth, tilted down by elevation
    right = np.array([np.cos(a), np.sin(a), 0.0])
    fwd = np.array([-np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), -np.sin(e)])
    up = np.cross(right, fwd)
    u, v, depth = p @ right, p @ up, p @ fwd
    scale = size * 0.9 / 1.0
    px = np.round(size / 2 + u * scale).astype(int)
    py = np.round(size / 2 - v * scale).astype(int)
    order = np.argsort(-depth)  # far first, near overwrite
    shade = 1.0 - (depth - depth.min()) / max(float(np.ptp(depth)), 1e-6)
    colour = (np.array([70, 110, 180]) + shade[:, None] * np.array([150, 120, 60])).clip(0, 255).astype(np.uint8)
    half = max(1, int(round(scale / r / 1.4)))
    for dx in range(-half, half + 1):
        for dy in range(-half, half + 1):
            x, y = (px + dx)[order], (py + dy)[order]
            ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            img[y[ok], x[ok]] = colour[order][ok]
    return Image.fromarray(img)


def contact_sheet(occupancies: list[np.ndarray], labels: list[str], columns: int = 6, size: int = 160) -> Image.Image:
    rows = (len(occupancies) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, max(rows, 1) * (size + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (occ, label) in enumerate(zip(occupancies, labels)):
        x, y = (k % columns) * size, (k // columns) * (size + 16)
        sheet.paste(render_voxels(occ, size), (x, y))
        draw.text((x + 4, y + size + 2), label[:28], fill=(0, 0, 0))
    return sheet
