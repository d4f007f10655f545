"""The share of a run behind that `sole-r1 learn`, `demo` and `train compact` show."""
from sole_r1_ros.run_progress import run_share


def test_the_progress_bar_counts_the_run_that_ends_first():
    """The demo's 10 minutes / 30,000 steps end by time near 24,000 steps: the bar shows 100 %."""
    assert run_share(24_000, 30_000, 600.0, 10.0) == 1.0          # time ends it
    assert run_share(15_000, 30_000, 120.0, 10.0) == 0.5          # steps ahead of time
    assert run_share(3_000, 30_000, 300.0, 10.0) == 0.5           # time ahead of steps
    assert run_share(30_000, 30_000, 10.0, 0.0) == 1.0            # no time budget
    assert run_share(40_000, 30_000, 10.0, 0.0) == 1.0            # resumed past the budget
    shares = [run_share(40 * t, 30_000, t, 10.0) for t in range(0, 601, 10)]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == 1.0


def test_a_run_by_time_only_counts_minutes():
    assert run_share(10_000, float('inf'), 30.0, 1.0) == 0.5
