"""Shrink frames to the model's tile size and (de)compress them for the trip to the reward node.

Shrinking with the protocol's own rule (scale = 384 / max(h, w), ``int()`` sizes, INTER_AREA)
means the reward node's letterbox step becomes a no-op copy, so the composite is pixel-identical
to letterboxing the full-resolution frame (before JPEG, if JPEG is chosen).
"""
import cv2
import numpy as np

TILE_SIZE = 384


def shrink_to_tile(frame: np.ndarray, size: int = TILE_SIZE) -> np.ndarray:
    """Downscale so the longer side is ``size``; frames already that small are returned as is."""
    height, width = frame.shape[:2]
    if max(height, width) <= size:
        return frame
    scale = size / max(height, width)
    return cv2.resize(frame, (int(width * scale), int(height * scale)),
                      interpolation=cv2.INTER_AREA)


def encode_tile(rgb: np.ndarray, fmt: str = 'png', jpeg_quality: int = 90) -> bytes:
    """Compress an RGB tile as PNG (lossless: the authors' client sends raw frames) or JPEG."""
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"tile format must be 'jpeg' or 'png', got {fmt!r}")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == 'jpeg' else []
    ok, buffer = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', bgr, params)
    if not ok:
        raise ValueError(f'could not encode a {rgb.shape} tile as {fmt}')
    return buffer.tobytes()


def decode_tile(data: bytes) -> np.ndarray:
    """Decompress a JPEG/PNG tile to RGB; raises ValueError on data that is not an image."""
    array = np.frombuffer(bytes(data), dtype=np.uint8)
    bgr = cv2.imdecode(array, cv2.IMREAD_COLOR) if array.size else None
    if bgr is None:
        raise ValueError(f'tile of {array.size} bytes is not a decodable JPEG/PNG image')
    return np.ascontiguousarray(bgr[:, :, ::-1])
