"""The one interface every reward backend implements: prepared requests in, raw replies out.

A backend builds no prompt, parses nothing and knows no ROS: the engine does the protocol
(``reward.protocol``) around it, so all backends see exactly the same inputs. A network backend
may overlap its own requests (bounded) behind the same synchronous call.
"""
from dataclasses import dataclass, field
import threading
from typing import Any, Mapping, Protocol, Sequence, TYPE_CHECKING

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.query import ProgressQuery

if TYPE_CHECKING:
    from PIL import Image


class BackendError(RuntimeError):
    """A backend could not answer (server down, bad reply, missing ground truth, ...)."""


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings of one request (the engine fills them from ``RewardConfig``)."""

    temperature: float = 1.0
    '''0 means greedy decoding.'''
    top_p: float = 0.9
    top_k: int = 50
    '''0 disables top-k.'''
    max_new_tokens: int = 200
    seed: int | None = None
    '''Seed applied before the call; a batch uses its first request's seed.'''


@dataclass(frozen=True, eq=False)
class PreparedRequest:
    """Exactly what the model sees for one query.

    The composite image is built on first use of ``image``: a backend that reads the camera
    views directly (the compact model reads ``query``) never pays for the 1176x784 picture.
    """

    given_image: 'Image.Image | None'
    '''A ready model image (tests, warm-up); None builds the composite from ``query``.'''
    messages: Sequence[Mapping[str, Any]]
    '''System message, then a user message whose content is ``[image, text]``.'''
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    '''Provenance and evaluation-only data: episode_id, step, privileged_progress.'''
    query: ProgressQuery | None = None
    '''The question the prompt was built from (frames, normalised goal, previous progress).'''

    _image_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                        repr=False, compare=False)

    @property
    def image(self) -> 'Image.Image':
        """The composite after the final resize (e.g. 1176x784 RGB), built once."""
        # Not functools.cached_property: up to Python 3.11 its lock is shared by every
        # instance, so requests on different threads built their composites one at a time
        # (py-spy, 16 requests at once: 45 % of the time spent on their bodies was that wait).
        with self._image_lock:
            image = self.__dict__.get('_image')
            if image is None:
                image = self.given_image if self.given_image is not None else self._build()
                self.__dict__['_image'] = image   # frozen: cached beside the fields
        return image

    def _build(self) -> 'Image.Image':
        if self.query is None:
            raise ValueError('a PreparedRequest needs given_image or query')
        q = self.query
        return protocol.to_model_image(protocol.build_composite(
            q.first_external, q.previous_external, q.current_external, q.first_wrist,
            q.previous_wrist, q.current_wrist, q.from_zero))


@dataclass(frozen=True)
class RawReply:
    """The model's reply to one request, unparsed."""

    text: str
    latency_s: float
    '''Wall time of the call that produced this reply (shared by a batch) [s].'''
    completion_tokens: int | None = None
    '''Generated tokens, when the backend knows (benchmarks use it).'''
    error: str | None = None
    '''Why this one request got no answer (its own timeout, HTTP error, malformed reply);
    the other requests of the batch are unaffected. ``text`` is '' then.'''


class Backend(Protocol):
    """Structural type of a backend; see the module docstring for the contract.

    A backend that may be called from several threads at once says how many calls it overlaps
    in an int attribute ``concurrent_calls`` (the openai backend: ``max_concurrency``); the
    engine calls one without it from one thread at a time. A backend trained on a known set of
    goals may have ``goal_coverage(goal)`` (the compact one: ``compact.coverage.GoalCoverage``);
    ``RewardEngine.goal_coverage`` answers None for one without it.
    """

    model_id: str

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        """Answer every request, in order.

        A failure of one request is that reply's ``error``; raise ``BackendError`` only when no
        request can be answered.
        """
        ...

    def close(self) -> None:
        """Free GPU memory and connections; the backend is unusable afterwards."""
        ...
