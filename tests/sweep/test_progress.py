"""The progress bar counts chunks, members and config-steps, and stays silent off a terminal."""
import io
import sys

from lazyrich.sweep.progress import SweepProgress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_and_silence(monkeypatch, capsys):
    with SweepProgress(chunks=4, members=10, done_chunks=1, done_members=2, enabled=True) as bar:
        assert not bar.enabled  # pytest captures stdout: not a terminal
        bar.advance(3, 300)
        bar.advance(5, 500)
    assert (bar.done_chunks, bar.done_members, bar.member_steps) == (3, 10, 800) and bar.rate > 0
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(sys, "stdout", _Tty())
    assert SweepProgress(1, 1).enabled and not SweepProgress(1, 1, enabled=False).enabled  # --quiet
    with SweepProgress(chunks=2, members=4, enabled=True, label="quick") as bar:
        bar.advance(2, 20)
    shown = sys.stdout.getvalue()
    assert "quick" in shown and "chunks 1/2" in shown and "members 2/4" in shown and "steps/s" in shown
