"""``sole-r1 score-bag BAG --goal TEXT``: score every episode of a recorded bag offline.

Episodes are split at the bag's ``episode`` messages and scored ``--episodes-at-once`` at a
time, one backend batch per query index across them (the batching the reward node does live),
as the bag is read: a bag of any length is scored in the memory of that many episodes' shown
frames.
"""
import argparse
import json
import os
import re
import sys
from typing import Any

import numpy as np

from sole_r1_ros.commands.answer_journal import AnswerJournal, config_digest
from sole_r1_ros.commands.reward_flags import (
    add_labelled_out, add_reward_arguments, answered_curve, check_writable,
    check_writable_folder, exit_code, make_engine, positive_int, reward_config, say_left_out)
from sole_r1_ros.labelled import LabelledEpisode, write_episode
from sole_r1_ros.labelled.folder import check_not_taken
from sole_r1_ros.reward import EpisodeFrames, offline_query_steps, score_episodes
from sole_r1_ros.reward.protocol import normalize_goal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (MCAP or sqlite3), e.g. from sole-r1 record')
    parser.add_argument('--goal', required=True, help='task in words, e.g. "close the drawer"')
    parser.add_argument('--external-topic', default='camera/external/image_raw',
                        help='external camera topic, as the bag has it: a run whose cameras '
                        'were remapped (external_camera:=, --remap) recorded the remapped name')
    parser.add_argument('--wrist-topic', default='camera/wrist/image_raw',
                        help="wrist camera topic, as the bag has it; '' for the external-only "
                        'prompt')
    parser.add_argument('--episode-topic', default='episode')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--num-queries', type=positive_int,
                       help='evenly spaced queries per episode (default 10)')
    group.add_argument('--stride', type=positive_int, help='query every K-th frame (and the last)')
    parser.add_argument('--episodes-at-once', type=positive_int, default=64,
                        help='most episodes scored together, one backend batch per query index '
                        'across them')
    parser.add_argument('--frames-memory-gb', type=float, default=2.0,
                        help='fewer episodes are scored together once their shown frames take '
                        'this much memory (at 640x480 an episode of 10 queries and two views '
                        'takes 20 MB; every second frame of 250, 230 MB)')
    add_reward_arguments(parser, oracle="a simulator's ground truth recorded on --truth-topic "
                         '(simulated runs only: to measure a reward model against the truth '
                         "on a learner's own episodes, or as a stand-in teacher in experiments)")
    parser.add_argument('--truth-topic', default='ground_truth',
                        help="the simulator's TaskState topic (--backend oracle)")
    parser.add_argument('--erase-robot', action='store_true',
                        help='take the robot out of the frames with the masks recorded beside '
                        "them (the camera node's erase_robot, offline): a compact file trained "
                        'on erased frames scores them, a compact pair (--erased-model) reads the '
                        'external view erased beside the pictures (only the external mask is '
                        'needed then), and --labelled-out writes the erased frames (data to '
                        'distil an erased file from any teacher, which scores what it reads; '
                        'with a pair or --erased-labelled-out it writes the pictures)')
    parser.add_argument('--mask-topics', nargs=2, metavar=('EXTERNAL', 'WRIST'),
                        default=['camera/external/robot_mask', 'camera/wrist/robot_mask'],
                        help='the robot mask topics (--erase-robot)')
    parser.add_argument('--out', default='bag_scores.json', help='results JSON')
    parser.add_argument('--plot', help='PNG with one progress curve per episode')
    add_labelled_out(parser, 'every episode')
    parser.add_argument('--erased-labelled-out', metavar='DIR',
                        help='with --erase-robot: also write every episode with the robot erased '
                        '(both views: the wrist mask is needed too) and the same progress, '
                        "beside --labelled-out's pictures: the two folders a compact pair is "
                        "distilled from (its pictures' file and its erased file)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sole_r1_ros.recording import read_camera_episodes, UNMARKED_EPISODE
    config = reward_config(args)
    check_writable(args.out, args.plot)
    if not args.frames_memory_gb > 0:
        raise ValueError(f'--frames-memory-gb must be > 0, got {args.frames_memory_gb}')
    if args.erased_labelled_out and not args.erase_robot:
        raise ValueError('--erased-labelled-out writes the frames with the robot erased: pass '
                         '--erase-robot (the bag needs the robot masks)')
    check_writable_folder(args.labelled_out, args.erased_labelled_out)
    goal = normalize_goal(args.goal)
    notes: list[str] = []
    oracle = args.backend == 'oracle'
    # The bag's episodes without their frames first: a long bag's frames do not fit in memory.
    recorded = read_camera_episodes(args.bag, args.external_topic, args.wrist_topic or None,
                                    args.episode_topic or None, notes=notes,
                                    truth_topic=args.truth_topic if oracle else None,
                                    decode_frame=lambda stamp: False)
    for note in notes:
        print(f'sole-r1 score-bag: {note}', file=sys.stderr)
    recorded = _marked_episodes(args, recorded, UNMARKED_EPISODE)
    recorded = [r for r in recorded if len(r.external) >= 2]
    if not recorded:
        raise ValueError(f'{args.bag}: no episode with at least 2 frames')
    # Each episode's folder in --labelled-out: its id, or the bag's name for an unmarked bag.
    ids = [re.sub(r'[^A-Za-z0-9_.-]', '_', r.episode_id if r.episode_id != UNMARKED_EPISODE
                  else f'{os.path.basename(os.path.normpath(str(args.bag)))}-{r.episode_id}')
           for r in recorded]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:   # the second would write over the first, and their answers mix by id
        raise ValueError(f'{args.bag}: episode {twice[0]!r} appears twice ({len(twice)} ids '
                         'do): the bag joins two recordings, or a node restarted its episode '
                         'ids; score each part on its own')
    for folder in (args.labelled_out, args.erased_labelled_out):   # before hours of scoring
        check_not_taken(folder, ids, 'bag', str(args.bag))
    if oracle:
        missing = [r.episode_id for r in recorded if not np.all(np.isfinite(r.truth))]
        if missing:
            raise ValueError(f'{args.bag}: frames without a {args.truth_topic!r} message of '
                             f'their moment in episodes {missing[:5]} ({len(missing)} in all)')
    num_queries = None if args.stride else (args.num_queries or 10)
    steps = [offline_query_steps(len(r.external), num_queries, args.stride) for r in recorded]
    pair = bool(config.erased_model)
    total = sum(len(s) for s in steps)
    journal = AnswerJournal(f'{args.out}.answers.jsonl', {
        'bag': os.path.abspath(str(args.bag)), 'goal': goal, 'steps': steps,
        'episodes': [r.episode_id for r in recorded], 'reward': config_digest(config)})
    answered = journal.resume('score-bag', total)
    with make_engine(config) as engine, tqdm(total=total, desc='scoring', unit='query') as bar:
        if (engine.robot_erased or engine.erased_beside) and not args.erase_robot:
            raise ValueError(f'{engine.model_id} reads frames with the robot erased: pass '
                             '--erase-robot (the bag needs the robot masks)')
        # The frames the queries show, decoded as the bag is read; with --erase-robot every
        # frame passes the eraser (a fixed camera's background memory), and a pair reads the
        # external view erased only. The model scores the frames it was trained on;
        # --labelled-out gets --erase-robot's.
        shown = _shown_frames(args, recorded, steps,
                              erase_wrist=not pair or bool(args.erased_labelled_out))
        results = []
        for chunk in _batches(shown, args.episodes_at_once, args.frames_memory_gb * 1e9):
            episodes = [EpisodeFrames(
                episode_id=recorded[i].episode_id, goal=goal,
                external=(erased if engine.robot_erased else views)[0],
                wrist=(erased if engine.robot_erased else views)[1], query_steps=steps[i],
                privileged_progress=recorded[i].truth if oracle else None,
                erased_external=erased[0] if engine.erased_beside else None)
                for i, views, erased in chunk]
            results += score_episodes(engine, episodes, on_batch=journal.progress(bar),
                                      answered=answered)
            del chunk, episodes
        model_id = engine.model_id
        scored = ('robot erased' if engine.robot_erased else
                  'pictures, and the external view erased beside them' if engine.erased_beside
                  else 'pictures')
    report = _report(args, goal, model_id, recorded, results)
    report['scored_frames'] = scored
    report['recovery'] = notes
    with open(args.out, 'w', encoding='utf-8') as stream:
        json.dump(report, stream, indent=2)
    if args.plot:
        _plot(args.plot, report)
    if args.labelled_out or args.erased_labelled_out:
        _write_labelled(args, report, recorded, ids, pair)
    # every answer is written where it goes now; the journal stays while some failed. Removed
    # before the labelled folders were, a stop while they were written (the bag decoded again,
    # videos encoded: the run's slow tail) had lost every answer: hours of GPU asked again.
    journal.finish('score-bag', [r for episode in results for r in episode])
    for episode in report['episodes']:
        last = episode['queries'][-1]
        # an unanswered query's progress is the engine's -1: say what it was, not '-1%'
        final = (f"{last['progress']}%" if last['valid'] else
                 f"not answered ({last['error'] or 'unreadable answer'})")
        print(f"{episode['episode_id']}: {episode['num_frames']} frames, "
              f"{len(episode['queries'])} queries, final progress {final}")
    answers = [r for episode in results for r in episode]
    return exit_code('score-bag', [r.error for r in answers if r.error is not None],
                     len(answers), args)


def _marked_episodes(args, recorded: list, unmarked: str) -> list:
    """The episodes the bag's ``Episode`` messages mark, or the whole bag where there are none.

    Frames before the first episode began (the graph starting up) belong to no episode.
    """
    marked = [r for r in recorded if r.episode_id != unmarked]
    if not marked:
        print(f"sole-r1 score-bag: {args.bag} is scored as one episode (--episode-topic '')"
              if not args.episode_topic else
              f'sole-r1 score-bag: {args.bag} has no {args.episode_topic!r} messages: all of '
              "it is one episode (the learner, or camera_node's ~/reset, marks episodes while "
              'recording)', file=sys.stderr)
        return recorded
    before = sum(len(r.external) for r in recorded if r.episode_id == unmarked)
    if before:
        print(f'sole-r1 score-bag: {before} frames before the first episode began are not '
              'scored', file=sys.stderr)
    return marked


def _write_labelled(args, report: dict[str, Any], recorded, ids: list[str],
                    pair: bool) -> None:
    """Every episode with the model's per-frame progress: distillation data.

    Episode by episode, decoded again from the bag (``_episode_frames``). ``--labelled-out``
    gets the erased frames for an erased student, unless they have their own folder or the
    teacher is a pair (whose pictures' half reads the pictures).
    """
    erase = args.erase_robot
    erased_there = erase and not pair and not args.erased_labelled_out
    wrist_erased = erased_there or bool(args.erased_labelled_out)
    writable = {}
    for index, (scored, episode_id) in enumerate(zip(report['episodes'], ids)):
        failed = sum(bool(q['error']) for q in scored['queries'])
        if failed:   # its labels would be carried-forward answers
            print(f'sole-r1 score-bag: episode {episode_id}: {failed} of '
                  f'{len(scored["queries"])} queries failed: not written', file=sys.stderr)
        elif say_left_out('score-bag', f'episode {episode_id}', scored['invalid_queries'],
                          len(scored['queries']), args.labelled_out or args.erased_labelled_out):
            writable[index] = scored
    chosen = sorted(writable)
    for at, rec, pictures, erased in _episode_frames(args, [recorded[i] for i in chosen],
                                                     erase=erase, erase_wrist=wrist_erased):
        scored, episode_id = writable[chosen[at]], ids[chosen[at]]
        folders = []
        if args.labelled_out:
            folders.append((args.labelled_out, erased if erased_there else pictures,
                            erased_there))
        if args.erased_labelled_out:
            folders.append((args.erased_labelled_out, erased, True))
        seconds = (rec.stamps_ns[-1] - rec.stamps_ns[0]) / 1e9
        fps = (len(rec.stamps_ns) - 1) / seconds if seconds > 0 else 10.0
        for folder, (external, wrist), robot_erased in folders:
            write_episode(folder, LabelledEpisode(
                episode_id=episode_id, behaviour='recorded',   # not an expert: no VOC of it
                goal=report['goal'], progress=scored['progress'], external=external,
                wrist=wrist,
                # absolute: check_not_taken compares it with a later run's bag, from any folder
                meta={'source': f"sole-r1 score-bag ({report['model_id']})",
                      'bag': os.path.abspath(report['bag']),
                      'stamps_ns': rec.stamps_ns, 'query_steps': scored['query_steps'],
                      **({'robot_erased': True} if robot_erased else {})}),
                videos=None, fps=fps)


def _report(args, goal: str, model_id: str, recorded, results) -> dict[str, Any]:
    out = []
    for rec, answers in zip(recorded, results):
        steps = [r.step for r in answers]
        curve, invalid = answered_curve(len(rec.external), answers)
        out.append({
            'episode_id': rec.episode_id, 'num_frames': len(rec.external),
            'stamps_ns': rec.stamps_ns, 'query_steps': steps, 'invalid_queries': invalid,
            'progress': [round(float(v), 3) for v in curve],
            'queries': [{'step': r.step, 'progress': r.progress, 'valid': r.valid,
                         'reasoning': r.reasoning, 'latency_s': round(r.latency_s, 4),
                         'error': r.error} for r in answers]})
    return {'bag': str(args.bag), 'goal': goal, 'backend': args.backend, 'model_id': model_id,
            'temperature': args.temperature, 'episodes': out}


def _shown_frames(args, recorded: list, steps: list[list[int]], erase_wrist: bool):
    """Yield each episode's index, (external, wrist) frames and erased ones, in order.

    Frames are decoded only where a query shows them; the other entries are None
    (``score_episodes`` reads step 0 and the query steps). With ``--erase-robot`` also the
    erased frames (wrist too when ``erase_wrist``), made from every frame in time order; else
    None.
    """
    shown = [sorted({0, *s}) for s in steps]
    if not args.erase_robot:
        for index, _, views, _ in _episode_frames(args, recorded, shown):
            yield index, views, None
        return
    for index, _, views, erased_views in _episode_frames(args, recorded, erase=True,
                                                         erase_wrist=erase_wrist):
        yield index, _only(views, shown[index]), _only(erased_views, shown[index])


def _batches(shown, most: int, budget_bytes: float):
    """``shown``'s episodes in lists of up to ``most``, ended early once over ``budget_bytes``."""
    batch, held = [], 0
    for item in shown:
        batch.append(item)
        held += sum(frame.nbytes for views in item[1:] if views is not None
                    for frames in views if frames is not None
                    for frame in frames if frame is not None)
        if len(batch) == most or held >= budget_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _only(views: tuple, indices: list[int]) -> tuple[list, list | None]:
    """(external, wrist) lists holding only the frames at ``indices`` (None elsewhere).

    Copies: an erased frame is a view of its whole episode's array, which it would keep.
    """
    keep = set(indices)
    return tuple(None if frames is None else
                 [f.copy() if i in keep else None for i, f in enumerate(frames)]
                 for frames in views)


def _episode_frames(args, recorded: list, shown: list[list[int]] | None = None,
                    erase: bool = False, erase_wrist: bool = False):
    """Yield (index, episode, (external, wrist), erased (external, wrist) or None) in order.

    One read of the bag, each episode put together as its frames arrive and given away when
    whole, so that a bag of any length is scored and written in the memory of a few episodes.
    ``shown``: per episode, the only frames to decode (the others None); default all.
    ``erase``: with the robot erased too, by the masks recorded beside the frames
    (``erase_wrist``: the wrist view too), which takes all frames.

    Raises:
        ValueError: with ``erase``, a frame has no robot mask of its stamp in the bag.
    """
    from sole_r1_ros.recording import stream_frames
    wrist = bool(args.wrist_topic)
    erase_wrist = erase_wrist and wrist
    mask_of = _mask_stamps(args, recorded, erase_wrist) if erase else {}
    # What each episode needs, by (topic, stamp); a frame two episodes need is kept for both.
    needs = []
    for index, rec in enumerate(recorded):
        at = shown[index] if shown is not None else range(len(rec.stamps_ns))
        keys = [(args.external_topic, rec.stamps_ns[i]) for i in at]
        keys += [(args.wrist_topic, rec.wrist_stamps_ns[i]) for i in at] if wrist else []
        if erase:
            keys += [(args.mask_topics[0], s) for s in rec.stamps_ns]
            keys += [(args.mask_topics[1], mask_of[s]) for s in rec.stamps_ns] if erase_wrist \
                else []
        needs.append(keys)
    wanted: dict[str, set[int]] = {}
    needed_by: dict[tuple[str, int], list[int]] = {}
    for index, keys in enumerate(needs):
        for topic, stamp in set(keys):
            wanted.setdefault(topic, set()).add(stamp)
            needed_by.setdefault((topic, stamp), []).append(index)
    held: dict[tuple[str, int], np.ndarray] = {}
    missing = [len(set(keys)) for keys in needs]
    next_index = 0

    def whole(index: int):
        rec, keys = recorded[index], needs[index]
        external = [held.get((args.external_topic, s)) for s in rec.stamps_ns]
        views = (external, [held.get((args.wrist_topic, s)) for s in rec.wrist_stamps_ns]
                 if wrist else None)
        erased = None
        if erase:
            from sole_r1_ros.camera.robot_eraser import erase_episode
            erased_external = erase_episode(np.stack(external), np.stack(
                [held[(args.mask_topics[0], s)][..., 0] for s in rec.stamps_ns]),
                fixed_camera=True)
            erased = (list(erased_external), None if not erase_wrist else list(erase_episode(
                np.stack(views[1]), np.stack([held[(args.mask_topics[1], mask_of[s])][..., 0]
                                              for s in rec.stamps_ns]), fixed_camera=False)))
        for key in set(keys):
            needed_by[key].remove(index)
            if not needed_by[key]:
                del held[key]
        return index, rec, views, erased

    for topic, stamp, frame in stream_frames(args.bag, wanted):
        held[(topic, stamp)] = frame
        for index in needed_by[(topic, stamp)]:
            missing[index] -= 1
        while next_index < len(recorded) and not missing[next_index]:
            yield whole(next_index)
            next_index += 1
    if next_index < len(recorded):
        rec = recorded[next_index]
        raise ValueError(f'{args.bag}: episode {rec.episode_id}: {missing[next_index]} of its '
                         'frames could not be read again (the bag changed while it was scored?)')


def _mask_stamps(args, recorded: list, wrist: bool) -> dict[int, int]:
    """Per frame stamp, the stamp of the wrist mask paired with its external mask.

    Read without decoding, before any frame is: a frame without a mask of its stamp is
    refused before hours of scoring.

    Raises:
        ValueError: a frame has no robot mask of its stamp in the bag.
    """
    from sole_r1_ros.recording import read_camera_episodes
    paired = {}
    for episode in read_camera_episodes(args.bag, args.mask_topics[0],
                                        args.mask_topics[1] if wrist else None, None,
                                        decode_frame=lambda stamp: False):
        paired.update(zip(episode.stamps_ns, episode.wrist_stamps_ns if wrist
                          else episode.stamps_ns))
    for episode in recorded:
        missing = [s for s in episode.stamps_ns if s not in paired]
        if missing:
            raise ValueError(f'{args.bag}: {len(missing)} frames of episode '
                             f'{episode.episode_id} have no robot mask of their stamp on '
                             f'{args.mask_topics[0]}')
    return paired


def _plot(path: str, report: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 4))
    for episode in report['episodes']:
        axes.plot(episode['progress'], label=episode['episode_id'])
    axes.set(xlabel='frame', ylabel='predicted progress [%]', ylim=(-5, 105),
             title=f"{report['goal']} ({report['model_id']})")
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
