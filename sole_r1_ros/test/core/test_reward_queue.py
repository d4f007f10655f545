"""The reward node's ROS-free queue: newest query per episode, batching, stale answers."""
import dataclasses
from types import SimpleNamespace
import time

import numpy as np
import pytest

from sole_r1_ros.camera import encode_tile
from sole_r1_ros.nodes.reward_queue import EpisodeBook, PendingQuery
from sole_r1_ros.reward.query import ProgressResult


def _pending(episode: str, step: int, value: int = 50, trigger: str = 'stride') -> PendingQuery:
    tile = np.full((8, 8, 3), value, np.uint8)
    return PendingQuery(header=None, episode_id=episode, step=step, trigger=trigger,
                        current_external=tile, current_wrist=None,
                        first_external_data=encode_tile(tile, 'png'), first_wrist_data=b'',
                        privileged_progress=None, received_s=time.monotonic())


def _result(episode: str, step: int, progress: int) -> ProgressResult:
    return ProgressResult(episode, step, progress, True, '', '', 0.1, 'm', 'h')


def test_only_the_newest_query_per_episode_waits_and_episodes_batch_together():
    book = EpisodeBook()
    for step in (1, 2, 3):
        book.submit(_pending('a', step))
    book.submit(_pending('b', 1))
    assert book.replaced == 2 and book.pending_count() == 2
    batch = book.take(8, 'close the drawer.')
    assert [(p.episode_id, p.step) for p, _ in batch] == [('a', 3), ('b', 1)]
    assert batch[0][1].goal == 'close the drawer'


def test_stale_query_is_dropped_and_goal_change_applies_to_the_next_query():
    book = EpisodeBook()
    book.submit(_pending('a', 4))
    (_, query), = book.take(1, 'open the door')
    book.record(_result('a', 4, 30))
    book.release(['a'])
    book.submit(_pending('a', 2))             # older than what was answered
    assert book.stale == 1 and book.pending_count() == 0
    book.submit(_pending('a', 6))
    (_, query), = book.take(1, 'close the door')
    assert query.goal == 'close the door' and query.previous_progress == 30


def _stamped(episode: str, step: int, first: int, stamp_s: int) -> PendingQuery:
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp_s, nanosec=0))
    return dataclasses.replace(_pending(episode, step, first), header=header)


def test_a_restarted_camera_node_continues_the_episodes_chain():
    """A camera node restarted mid-episode numbers from 0 again, with a first frame of its own.

    Its queries continue the chain after the last step (they were all dropped as stale), the
    model still sees the episode's own first frame and quotes the last answer; a frame older
    than the chain's newest from a new first frame stays stale.
    """
    said = []
    book = EpisodeBook(on_restart=said.append)
    book.submit(_stamped('a', 40, first=50, stamp_s=100))
    (_, query), = book.take(1, 'x')
    book.record(_result('a', 40, 60))
    book.release(['a'])
    book.submit(_stamped('a', 4, first=90, stamp_s=99))   # another first frame, but older
    assert book.stale == 1 and book.pending_count() == 0 and not said
    book.submit(_stamped('a', 4, first=90, stamp_s=105))
    assert book.restarts == 1 and 'after step 40' in said[0]
    (pending, query), = book.take(1, 'x')
    assert pending.step == 44 and query.step == 44 and query.previous_progress == 60
    assert np.all(query.first_external == 50)            # the episode's own first frame
    book.record(_result('a', 44, 70))
    book.release(['a'])
    book.submit(_stamped('a', 8, first=90, stamp_s=106))   # the same sender: no new restart
    (pending, query), = book.take(1, 'x')
    assert (pending.step, book.restarts, query.previous_progress) == (48, 1, 70)


def test_an_episodes_final_query_behind_a_later_frames_is_answered_not_dropped():
    """A frame from after the end was queried first: the final query was then stale.

    The camera node took it as the episode's before the end reached it; the final query is
    the episode's verdict.
    """
    book = EpisodeBook()
    book.submit(dataclasses.replace(_stamped('a', 6, first=50, stamp_s=7), trigger='stride'))
    book.take(1, 'x')
    book.record(_result('a', 6, 80))
    book.release(['a'])
    book.submit(dataclasses.replace(_stamped('a', 5, first=50, stamp_s=6), trigger='final'))
    (pending, query), = book.take(1, 'x')
    assert (book.stale, book.late_finals) == (0, 1)
    assert pending.header.stamp.sec == 6 and query.step == 7 and query.previous_progress == 80
    book.submit(dataclasses.replace(_stamped('a', 4, first=50, stamp_s=5), trigger='stride'))
    assert book.stale == 1   # an older query that is not the final stays stale


def test_an_episode_out_with_the_backend_is_not_handed_out_again_until_released():
    book = EpisodeBook()
    book.submit(_pending('a', 1))
    [(_, first)] = book.take(1, 'x')
    book.submit(_pending('a', 2))             # arrives while step 1 is with the backend
    book.submit(_pending('b', 1))
    [(other, _)] = book.take(8, 'x')         # 'b' goes, 'a' waits for its answer
    assert other.episode_id == 'b'
    assert book.take(8, 'x') == [] and not book.ready()
    book.record(_result('a', 1, 40))
    assert book.take(8, 'x') == []            # recorded, but not yet released
    book.release(['a'])
    assert book.ready()
    [(pending, query)] = book.take(8, 'x')
    assert (pending.step, query.step, query.previous_progress) == (2, 2, 40)
    book.release(['a', 'b'])                  # the failure path: answers lost
    book.submit(_pending('b', 2))
    assert [p.step for p, _ in book.take(8, 'x')] == [2]


def test_book_forgets_the_oldest_episode_beyond_its_limit():
    book = EpisodeBook(max_episodes=2)
    for episode in 'abc':
        book.submit(_pending(episode, 1))
        book.take(1, 'x')
        book.record(_result(episode, 1, 10))
        book.release([episode])
    assert book.tracker('a') is None and book.tracker('c') is not None


def test_an_episode_whose_answer_is_awaited_is_not_forgotten():
    """Its chain would restart at 0 % when the answer came."""
    book = EpisodeBook(max_episodes=2)
    book.submit(_pending('a', 1))
    book.take(1, 'x')                           # 'a' is with the backend
    for episode in 'bc':
        book.submit(_pending(episode, 1))
        book.take(1, 'x')
        book.record(_result(episode, 1, 10))
        book.release([episode])
    assert book.tracker('a') is not None and book.tracker('b') is None
    book.record(_result('a', 1, 70))
    book.release(['a'])
    book.submit(_pending('a', 2))
    [(_, query)] = book.take(1, 'x')
    assert query.previous_progress == 70


def test_waiting_queries_are_bounded_by_the_episode_limit():
    """A node inactive while queries arrive holds at most max_episodes, the newest."""
    book = EpisodeBook(max_episodes=3)
    for index in range(10):
        book.submit(_pending(f'e{index}', 1))
    assert book.pending_count() == 3 and book.stale == 7
    assert [p.episode_id for p, _ in book.take(8, 'x')] == ['e7', 'e8', 'e9']


def test_an_episodes_final_query_is_the_last_to_be_dropped_and_is_said():
    """Five episodes ended while the node was inactive: the two oldest finals were dropped."""
    said = []
    book = EpisodeBook(max_episodes=3, on_unusable=said.append)
    book.submit(_pending('e0', 9, trigger='final'))
    book.submit(_pending('e1', 9, trigger='final'))
    for index in (2, 3):
        book.submit(_pending(f'e{index}', 4))
    assert sorted(p.episode_id for p, _ in book.take(8, 'x')) == ['e0', 'e1', 'e3']
    assert not said
    book = EpisodeBook(max_episodes=2, on_unusable=said.append)
    for index in range(3):
        book.submit(_pending(f'e{index}', 9, trigger='final'))
    assert book.pending_count() == 2 and said and 'e0' in said[0]


def test_a_long_episode_keeps_a_bounded_curve():
    """An episode as long as the node: the curve shows the newest answers, in constant time."""
    from sole_r1_ros.nodes.reward_queue import HISTORY_LENGTH
    book = EpisodeBook()
    for step in range(1, HISTORY_LENGTH + 50):
        book.submit(_pending('a', step))
        book.take(1, 'x')
        view = book.record(_result('a', step, step % 100))
        book.release(['a'])
        if step == 3:
            assert view.history == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]
    assert len(view.history) == HISTORY_LENGTH
    assert view.history[-1] == (HISTORY_LENGTH + 49, float((HISTORY_LENGTH + 49) % 100))
    assert book.tracker('a').recorded == HISTORY_LENGTH + 49


def test_pending_query_rejects_bad_messages():
    tile = SimpleNamespace(data=encode_tile(np.zeros((4, 4, 3), np.uint8), 'png'))
    empty = SimpleNamespace(data=b'')
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=0)),
                          episode_id='e', step=1, trigger='stride',
                          current_external=tile, first_external=tile, current_wrist=tile,
                          first_wrist=empty, privileged_progress=float('nan'),
                          first_erased_external=empty, current_erased_external=empty)
    from sole_r1_ros.camera import decode_tile
    with pytest.raises(ValueError, match='only one of'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.current_wrist, msg.first_erased_external = empty, tile
    with pytest.raises(ValueError, match='erased external tile given for only one of'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.current_erased_external = tile
    assert PendingQuery.from_message(msg, decode_tile, 0.0).current_erased_external.shape == (
        4, 4, 3)
    msg.step = 0
    with pytest.raises(ValueError, match='step 0'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.step, msg.header.stamp.sec = 1, -5      # rclpy's Time refuses it after the model ran
    with pytest.raises(ValueError, match='stamp -5 s is negative'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.header.stamp.sec, msg.current_external = 5, SimpleNamespace(data=b'junk')
    with pytest.raises(ValueError, match='not a decodable'):
        PendingQuery.from_message(msg, decode_tile, 0.0)


def test_a_query_that_cannot_be_made_is_said_not_dropped_in_silence():
    unusable = []
    book = EpisodeBook(on_unusable=unusable.append)
    # the first tile is decoded once, when the episode's first query is taken
    book.submit(dataclasses.replace(_pending('e', 1), first_external_data=b'garbage'))
    book.submit(_pending('f', 1))
    assert [p.episode_id for p, _ in book.take(8, 'x')] == ['f']
    assert len(unusable) == 1 and unusable[0].startswith('episode e step 1: ')
