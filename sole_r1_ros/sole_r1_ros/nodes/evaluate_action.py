"""The learner's ``~/evaluate`` action: deterministic episodes, feedback after each, a result.

The execute callback is a coroutine, so the node's single-threaded executor keeps serving its
sensors while an evaluation waits; a 5 Hz timer wakes it to publish feedback and to notice a
cancel. The simulator's ground truth is read only here, for the report: subscribed from the
first evaluation on and kept (destroying it while an executor thread builds its wait set raised
``InvalidHandle`` and ended a multi-threaded executor), its messages count only while an
evaluation runs (``ControlLoop.saw_ground_truth``).
"""
import threading

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

from sole_r1_interfaces.action import Evaluate
from sole_r1_interfaces.msg import TaskState
from sole_r1_ros.rl import ControlLoop


class EvaluateAction:
    """``Evaluate.action`` served for one learner node's ``ControlLoop``."""

    def __init__(self, node, loop: ControlLoop, running: threading.Event) -> None:
        self._node, self.loop, self._running = node, loop, running
        self.firewall = node.firewall
        self._waiting: list[Future] = []
        self._busy = False   # one evaluation at a time (callbacks share one executor thread)
        self._server = ActionServer(node, Evaluate, '~/evaluate', execute_callback=self._evaluate,
                                    goal_callback=self._accept,
                                    cancel_callback=lambda goal: CancelResponse.ACCEPT)
        self._timer = node.create_timer(0.2, self._tick)
        self._truth = None

    @property
    def busy(self) -> bool:
        """An evaluation goal runs, or has yet to send its result."""
        return self._busy

    def wake(self) -> None:
        """Have a waiting evaluation look at once (a stop aborts it), not at the next tick."""
        self._tick()

    def destroy(self) -> None:
        self._server.destroy()
        self._node.destroy_timer(self._timer)
        if self._truth is not None:
            self._node.destroy_subscription(self._truth)

    def _accept(self, request) -> GoalResponse:
        """Refuse a goal that cannot run, saying why.

        Another evaluation running, the learner paused (it would wait) or not active (nothing
        would run), a threshold outside [0, 100]: accepted, such goals were aborted with a
        result of zeros that read like 0 % success.
        """
        threshold = float(request.progress_threshold or 90.0)
        why = ('an evaluation is running' if self._busy else
               'the learner is paused (~/pause false first)' if self.loop.paused else
               'the learner is not active (its lifecycle state: activate it first)'
               if not self._running.is_set() else
               f'progress_threshold {request.progress_threshold} is not a percentage in '
               '[0, 100] (0 means 90)' if not 0.0 <= threshold <= 100.0 else None)
        if why is not None:
            self._node.get_logger().warning(f'evaluate goal refused: {why}')
            return GoalResponse.REJECT
        self._busy = True
        return GoalResponse.ACCEPT

    async def _evaluate(self, goal_handle):
        """Run evaluation episodes, publishing feedback after each.

        A coroutine, so the single-threaded executor keeps serving every other callback while
        it waits (the ``_tick`` timer wakes it five times a second).
        """
        request = goal_handle.request
        threshold = float(request.progress_threshold or 90.0)   # checked in _accept
        wanted = max(1, int(request.episodes))
        evaluation = self.loop.start_evaluation(threshold, episodes=wanted)
        if self._truth is None:
            self._truth = self._node.create_subscription(
                TaskState, 'ground_truth', self.firewall.guard(
                    'ground_truth', lambda m: self.loop.saw_ground_truth(bool(m.success))), 10)
        try:
            while len(evaluation.finished) < wanted:
                if goal_handle.is_cancel_requested:
                    goal_handle.canceled()
                    return evaluation.result(Evaluate.Result)
                if not self._running.is_set():   # the learner is stopping
                    goal_handle.abort()
                    return evaluation.result(Evaluate.Result)
                await self._next_tick()
                # episodes run on until this returns: close no more than were asked for
                while len(evaluation.finished) < wanted and evaluation.wait_episode(timeout=0.0):
                    done = evaluation.finished[-1]
                    goal_handle.publish_feedback(Evaluate.Feedback(
                        episode_index=len(evaluation.finished) - 1,
                        final_progress=done.final_progress,
                        success_progress=done.success_progress,
                        success_ground_truth=done.success_ground_truth,
                        has_ground_truth=done.has_ground_truth,
                        episode_return=done.episode_return))
            goal_handle.succeed()
            return evaluation.result(Evaluate.Result)
        finally:
            self.loop.stop_evaluation(evaluation)
            self._busy = False

    def _next_tick(self) -> Future:
        future = Future()
        self._waiting.append(future)
        return future

    def _tick(self) -> None:
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            future.set_result(None)
