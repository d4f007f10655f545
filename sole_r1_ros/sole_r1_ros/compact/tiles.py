"""The camera views of a SOLE-R1 query as the compact network sees them.

The compact backend answers the same ``PreparedRequest`` SOLE-R1 does, but reads the query's
frames (``PreparedRequest.query``) directly instead of cutting them back out of the 1176x784
composite: each frame is letterboxed with the protocol's own rule (``protocol.letterbox``:
longer side to the tile size, INTER_AREA, centred on black), straight to the network's size.
"""
from typing import Any

import numpy as np

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.query import ProgressQuery


def query_views(query: ProgressQuery, size: int) -> np.ndarray:
    """Letterbox the query's frames to ``size`` x ``size``.

    Returns:
        uint8 array (2 views, 3 times, size, size, 3): views are external then wrist (zeros
        when the query is external-only), times first, previous, current (previous = first
        for a from-zero query, whose previous column does not exist).
    """
    out = np.zeros((2, 3, size, size, 3), dtype=np.uint8)
    previous = ('first' if query.from_zero else 'previous')
    for row, view in enumerate(('external', 'wrist')):
        frames = [getattr(query, f'{when}_{view}') for when in ('first', previous, 'current')]
        if frames[0] is None:
            continue
        out[row] = np.stack([protocol.letterbox(frame, size, f'{when}_{view}')
                             for frame, when in zip(frames, ('first', previous, 'current'))])
    return out


def read_request(request: Any, size: int) -> tuple[np.ndarray, ProgressQuery]:
    """Return (views, query) of a ``PreparedRequest``; views as in ``query_views``.

    Raises:
        ValueError: the request carries no query (a ready-made image only).
    """
    if request.query is None:
        raise ValueError('the compact backend reads the camera frames of the query; this '
                         'request carries only a finished image')
    return query_views(request.query, size), request.query
