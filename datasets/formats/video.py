"""Reader of video files (mp4, avi, mov, mkv, webm, gif via imageio: ffmpeg / pillow) as grayscale
frames, centre-cropped to a square and resized."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import DEFAULT_MAX_BYTES, check_file, reader_errors
from datasets.layout import (
    FRAME_STEP,
    NATURAL_VIDEO_FAMILY,
    PIXEL_UNITS,
    as_dataset_array,
    check_values,
)
from datasets.magic import (
    HDF5_MAGIC,
    MKV_MAGIC,
    NETCDF3_MAGIC,
    NPY_MAGIC,
    VIDEO_SUFFIXES,
    ZIP_MAGIC,
    head,
    is_gif,
)
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_decoded, check_gif, check_video

DEFAULT_MAX_FRAMES = 300  # frames read from a video before stopping (10 s at 30 fps)


def _to_gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` -> ``(H, W)`` float32 in [0, 255]."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        gray = frame.astype(np.float32)
    elif frame.ndim == 3 and frame.shape[-1] in (1, 2):
        gray = frame[..., 0].astype(np.float32)
    elif frame.ndim == 3 and frame.shape[-1] in (3, 4):
        rgb = frame[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    else:
        raise DatasetError(f"video frame of shape {frame.shape} is not an image")
    if frame.dtype == np.uint16:
        gray = gray / 257.0
    return gray


def _square_resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``(H, W)`` to a square and resize to ``(size, size)`` (bilinear)."""
    from PIL import Image

    h, w = gray.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = gray[top : top + side, left : left + side]
    image = Image.fromarray(np.clip(crop, 0, 255).astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _decode_frames(path: Path, ext: str, *, size: int, max_frames: int) -> tuple[list, dict]:
    """Up to ``max_frames`` grayscale ``size`` x ``size`` frames, and the file's metadata."""
    import imageio.v3 as iio

    frames = []
    plugin = "pillow" if ext == ".gif" else "FFMPEG"  # explicit: no fallback to other plugins
    if plugin == "pillow":
        check_gif(path, max_frames=max_frames)  # canvas and frames from the GIF blocks
    with iio.imopen(path, "r", extension=ext, plugin=plugin) as video:
        try:
            meta = video.metadata()  # GIF: global metadata, no frame is decoded
        except Exception:  # noqa: BLE001 - metadata is optional for GIF; frames are what matter
            meta = {}
        if plugin == "FFMPEG":
            check_video(path, meta, max_frames=max_frames)  # ffmpeg's frame size, then decode
        for frame in video.iter():
            frames.append(_square_resize(_to_gray(frame), size))
            if len(frames) >= max_frames:
                break
    return frames, meta


def _frame_rate(meta: dict, ext: str) -> float | None:
    """Frames per second stated by the file (GIF: from the per-frame duration), if positive."""
    fps = meta.get("fps")
    if not fps and meta.get("duration") and ext == ".gif":
        fps = 1000.0 / float(meta["duration"])  # GIF duration is per frame, in ms
    if fps and np.isfinite(fps) and fps > 0:
        return float(fps)
    return None


@reader_errors("a video (mp4, avi, mov, mkv, webm, gif)")
def open_video(
    path: str | os.PathLike,
    *,
    size: int = 64,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    extension: str | None = None,
) -> xr.DataArray:
    """Read a video as grayscale frames.

    Parameters
    ----------
    path : path
        mp4/avi/mov/mkv/webm (ffmpeg, shipped with ``imageio-ffmpeg``) or an animated GIF (pillow).
    size : int
        Output frames are ``size`` x ``size`` pixels: centre-cropped to a square, then resized.
    max_frames : int
        Stop after this many frames.
    max_bytes : int or None
        Size limit of the file.
    extension : str, optional
        Format to assume (e.g. ``".mp4"``) when the file name has no telling suffix.

    Returns
    -------
    xarray.DataArray
        float32 ``(1, time, 1, size, size)`` in ``"pixel intensity [0, 1]"``; ``time_step`` is
        ``"1 frame"`` and ``frame_rate_hz`` holds the frame rate when the file states one.
    """
    path = check_file(path, max_bytes=max_bytes)
    if not (isinstance(size, int) and 4 <= size <= 1024):
        raise DatasetError(f"size={size!r} for {path.name}: use an int between 4 and 1024.")
    if not (isinstance(max_frames, int) and max_frames >= 1):
        raise DatasetError(f"max_frames={max_frames!r} for {path.name}: use a positive int.")
    ext = extension or (path.suffix.lower() if path.suffix.lower() in VIDEO_SUFFIXES else None)
    if ext is None:
        ext = ".gif" if is_gif(head(path, 6)) else ".mp4"
    check_decoded(path, (1, max_frames, 1, size, size), max_bytes=DEFAULT_MAX_DECODED_BYTES)
    frames, meta = _decode_frames(path, ext, size=size, max_frames=max_frames)
    if not frames:
        raise DatasetError(f"{path.name}: the video has no frames.")
    values = np.stack(frames)[None, :, None] / 255.0  # (1, T, 1, size, size)
    check_values(values, path=path)
    extra = {"original_format": ext.lstrip("."), "family": NATURAL_VIDEO_FAMILY}
    fps = _frame_rate(meta, ext)
    if fps is not None:
        extra["frame_rate_hz"] = fps
    return as_dataset_array(
        values,
        units=PIXEL_UNITS,
        time_step=FRAME_STEP,
        domain="video",
        source=path.name,
        description=f"grayscale frames of {path.name}, centre-cropped and resized to {size}x{size}",
        channel=["intensity"],
        extra_attrs=extra,
    )


def match_video(path: Path, head: bytes) -> bool:
    """GIF, mp4/mov (``ftyp``), mkv/webm (EBML) or AVI (``RIFF....AVI ``) content, or a video
    suffix on a file whose content is not another known format."""
    if is_gif(head):
        return True
    if head[4:8] == b"ftyp" or head.startswith(MKV_MAGIC):  # mp4/mov, mkv/webm
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    return path.name.lower().endswith(VIDEO_SUFFIXES) and not head.startswith(
        (NPY_MAGIC, HDF5_MAGIC, ZIP_MAGIC) + NETCDF3_MAGIC
    )
