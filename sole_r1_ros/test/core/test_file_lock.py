"""One process at a time on a run directory: the lock file, its release and its removal."""
import fcntl
import os

from sole_r1_ros import file_lock


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    path = tmp_path / 'run.lock'
    first = file_lock.try_lock(path, 'pid 1')
    assert not isinstance(first, str)
    assert file_lock.try_lock(path, 'pid 2') == 'pid 1'
    file_lock.release(path, first)
    assert not path.exists()   # one file per run directory was left in /tmp for ever
    again = file_lock.try_lock(path, 'pid 3')
    assert not isinstance(again, str)
    file_lock.release(path, again)


def test_a_file_removed_as_it_was_locked_is_not_taken_for_the_lock(tmp_path, monkeypatch):
    """Opened, then released and removed by its holder before the flock.

    Locking that old file would let two processes hold the one lock.
    """
    path = tmp_path / 'run.lock'
    flock, removed = fcntl.flock, []

    def holder_lets_go_first(handle, operation):
        if not removed:
            removed.append(True)
            os.unlink(path)
        flock(handle, operation)
    monkeypatch.setattr(file_lock.fcntl, 'flock', holder_lets_go_first)
    held = file_lock.try_lock(path, 'pid 4')
    assert not isinstance(held, str) and removed
    assert os.stat(path).st_ino == os.fstat(held.fileno()).st_ino   # the file the path names
    file_lock.release(path, held)
