"""The camera views of a SOLE-R1 query as the compact network sees them.

The compact backend answers the same ``PreparedRequest`` SOLE-R1 does, but reads the query's
frames (``PreparedRequest.query``) directly instead of cutting them back out of the 1176x784
composite: each frame is letterboxed with the protocol's own rule (``protocol.letterbox``:
longer side to the tile size, INTER_AREA, centred on black), straight to the network's size.
"""
from collections import OrderedDict
from typing import Any

import numpy as np

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.query import ProgressQuery


class TileCache:
    """The letterboxed tiles of the frames seen lately, by frame object.

    Two of a query's three frames were letterboxed for an earlier query of its episode: the
    first frame is the same every time and the previous one was the last query's current one.
    On 640x480 camera frames letterboxing is more of a query's time than the network's forward
    pass (``make bench-compact``). A cached frame is held, so its ``id`` cannot pass to another
    array; a frame changed in place after it was asked about would be served stale (the reward
    engine's episode trackers keep their frames as they came).
    """

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._tiles: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def letterbox(self, frame: np.ndarray, size: int, name: str) -> np.ndarray:
        """Return the frame letterboxed by ``protocol.letterbox``, made once per frame object."""
        key = (id(frame), size)
        entry = self._tiles.get(key)
        if entry is not None and entry[0] is frame:
            self._tiles.move_to_end(key)
            self.hits += 1
            return entry[1]
        tile = protocol.letterbox(frame, size, name)
        self.misses += 1
        self._tiles[key] = (frame, tile)
        if len(self._tiles) > self._capacity:
            self._tiles.popitem(last=False)
        return tile


def query_views(query: ProgressQuery, size: int, cache: TileCache | None = None,
                erased_external: bool = False) -> np.ndarray:
    """Letterbox the query's frames to ``size`` x ``size`` (through ``cache`` if given).

    With ``erased_external`` the external row holds the query's erased external frames and the
    wrist row stays zero (the erased member of a compact pair reads the external view only).

    Returns:
        uint8 array (2 views, 3 times, size, size, 3): views are external then wrist (zeros
        when the query is external-only), times first, previous, current (previous = first
        for a from-zero query, whose previous column does not exist).
    """
    fit = protocol.letterbox if cache is None else cache.letterbox
    out = np.zeros((2, 3, size, size, 3), dtype=np.uint8)
    previous = ('first' if query.from_zero else 'previous')
    rows = ('erased_external',) if erased_external else ('external', 'wrist')
    for row, view in enumerate(rows):
        frames = [getattr(query, f'{when}_{view}') for when in ('first', previous, 'current')]
        if frames[0] is None:
            continue
        out[row] = np.stack([fit(frame, size, f'{when}_{view}')
                             for frame, when in zip(frames, ('first', previous, 'current'))])
    return out


def read_request(request: Any, size: int, cache: TileCache | None = None
                 ) -> tuple[np.ndarray, ProgressQuery]:
    """Return (views, query) of a ``PreparedRequest``; views as in ``query_views``.

    Raises:
        ValueError: the request carries no query (a ready-made image only).
    """
    if request.query is None:
        raise ValueError('the compact backend reads the camera frames of the query; this '
                         'request carries only a finished image')
    return query_views(request.query, size, cache), request.query
