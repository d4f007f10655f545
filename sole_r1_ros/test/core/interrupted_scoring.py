"""A scoring of six queries stopped by Ctrl-C in its fourth round, then run again."""
from sole_r1_ros.cli import main
from sole_r1_ros.reward import RewardEngine


def check_resumes(args, out, progress_of, monkeypatch, capsys) -> None:
    """The rerun asks only the three queries not answered, and ends where a whole run ends.

    ``progress_of(out)``: the answers the results file holds, in order.
    """
    assert main(args) == 0
    whole = progress_of(out)
    out.unlink()
    real, asked = RewardEngine.score, []

    def score(self, queries, interrupt_at=None):
        asked.append(len(queries))
        if len(asked) == interrupt_at:
            raise KeyboardInterrupt
        return real(self, queries)
    monkeypatch.setattr(RewardEngine, 'score', lambda self, q: score(self, q, interrupt_at=4))
    assert main(args) == 130 and not out.exists()
    journal = out.with_name(out.name + '.answers.jsonl')
    assert len(journal.read_text().splitlines()) == 1 + 3     # its header and three answers
    asked.clear()
    monkeypatch.setattr(RewardEngine, 'score', lambda self, q: score(self, q))
    capsys.readouterr()
    assert main(args) == 0
    assert '3 of 6 answers from an interrupted run' in capsys.readouterr().err
    assert sum(asked) == 3 and not journal.exists()
    assert progress_of(out) == whole
