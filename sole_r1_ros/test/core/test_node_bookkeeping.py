"""The ROS-free bookkeeping behind reward_node and learner_node."""
from types import SimpleNamespace
import time

import numpy as np
import pytest

from sole_r1_ros.camera import encode_tile
from sole_r1_ros.nodes.learner_episodes import EpisodeClock, Evaluation
from sole_r1_ros.nodes.reward_queue import EpisodeBook, PendingQuery
from sole_r1_ros.reward.query import ProgressResult


def _pending(episode: str, step: int, value: int = 50) -> PendingQuery:
    tile = np.full((8, 8, 3), value, np.uint8)
    return PendingQuery(header=None, episode_id=episode, step=step, trigger='stride',
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
    book.submit(_pending('a', 2))             # older than what was answered
    assert book.stale == 1 and book.pending_count() == 0
    book.submit(_pending('a', 6))
    (_, query), = book.take(1, 'close the door')
    assert query.goal == 'close the door' and query.previous_progress == 30


def test_book_forgets_the_oldest_episode_beyond_its_limit():
    book = EpisodeBook(max_episodes=2)
    for episode in 'abc':
        book.submit(_pending(episode, 1))
        book.take(1, 'x')
    assert book.tracker('a') is None and book.tracker('c') is not None


def test_pending_query_rejects_bad_messages():
    tile = SimpleNamespace(data=encode_tile(np.zeros((4, 4, 3), np.uint8), 'png'))
    empty = SimpleNamespace(data=b'')
    msg = SimpleNamespace(header=None, episode_id='e', step=1, trigger='stride',
                          current_external=tile, first_external=tile, current_wrist=tile,
                          first_wrist=empty, privileged_progress=float('nan'))
    from sole_r1_ros.camera import decode_tile
    with pytest.raises(ValueError, match='only one of'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.current_wrist, msg.step = empty, 0
    with pytest.raises(ValueError, match='step 0'):
        PendingQuery.from_message(msg, decode_tile, 0.0)
    msg.step, msg.current_external = 1, SimpleNamespace(data=b'junk')
    with pytest.raises(ValueError, match='not a decodable'):
        PendingQuery.from_message(msg, decode_tile, 0.0)


def test_episode_clock_asks_for_episodes_at_start_on_request_and_at_the_end():
    clock = EpisodeClock()
    assert clock.needs_new_episode(0, 10)
    clock.episode_started()
    assert not clock.needs_new_episode(3, 10)
    clock.request_reset()
    assert clock.needs_new_episode(3, 10)
    clock.episode_started()
    clock.episode_over()
    assert clock.needs_new_episode(10, 10)


def test_evaluation_waits_for_the_late_final_answer_then_scores():
    evaluation = Evaluation(threshold=80.0, label_wait_s=5.0)
    evaluation.episode_started('e0')
    evaluation.saw_progress('e0', 40.0)
    evaluation.saw_ground_truth(False)
    evaluation.episode_finished()
    assert not evaluation.wait_episode(timeout=0.2)     # its final answer is still coming
    evaluation.saw_progress('e0', 90.0)
    assert evaluation.wait_episode(timeout=1.0)
    (outcome,) = evaluation.finished
    assert outcome.final_progress == 90.0 and outcome.success_progress
    assert outcome.has_ground_truth and not outcome.success_ground_truth
    result = evaluation.result(lambda **kw: kw)
    assert result['episodes_done'] == 1 and result['success_rate_progress'] == 1.0


def test_evaluation_closes_an_episode_without_answers_after_the_wait():
    evaluation = Evaluation(threshold=50.0, label_wait_s=0.1)
    evaluation.episode_started('e0')
    evaluation.episode_finished()
    assert evaluation.wait_episode(timeout=1.0)
    assert evaluation.finished[0].final_progress == 0.0
    assert np.isnan(evaluation.result(lambda **kw: kw)['success_rate_ground_truth'])


def test_online_learner_matches_labels_by_stamp_and_resumes(tmp_path):
    pytest.importorskip('torch')
    from sole_r1_ros.nodes.learner_core import OnlineLearner
    from sole_r1_ros.rl import DrQConfig, LabelOutcome, ReplayConfig
    learner = OnlineLearner(DrQConfig(seed_steps=0, batch_size=4),
                            ReplayConfig(min_labelled=1, capacity=100), 3, 4,
                            checkpoint_dir=tmp_path, stamp_tolerance_s=0.05)
    learner.start_episode('ep')
    for step in range(5):
        obs = {'state': np.full(3, step, np.float32)}
        learner.record(obs, np.zeros(4, np.float32) if step < 4 else None,
                       stamp_ns=1_000_000_000 + step * 100_000_000)
    assert learner.label('ep', 1_200_000_000, 40.0) == LabelOutcome.APPLIED       # exact
    assert learner.label('ep', 1_310_000_000, 60.0) == LabelOutcome.APPLIED       # nearest
    assert learner.label('ep', 1_200_000_000, 99.0) == LabelOutcome.DUPLICATE     # once only
    assert learner.label('ep', 9_000_000_000, 10.0) is None                       # no frame
    assert learner.label('other', 1_200_000_000, 10.0) is None
    assert learner.label('ep', 1_400_000_000, -30.0) == LabelOutcome.APPLIED      # clipped
    assert learner.replay.stats()['labels_applied'] == 4                          # + step 0
    assert learner.save() is not None
    again = OnlineLearner(DrQConfig(seed_steps=0, batch_size=4),
                          ReplayConfig(min_labelled=1, capacity=100), 3, 4,
                          checkpoint_dir=tmp_path)
    assert again.resume() and again.counters() == learner.counters()
    assert again.start_episode('next') == learner.episode_index + 1
