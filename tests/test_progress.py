"""Progress bars of long commands: quiet off a terminal, drawn with an ETA on one (a pty), and the
runtime notes of the reproductions read as seconds."""
import os
import subprocess
import sys

import pytest

from lazyrich.progress import ExpectedBar, WorkBar, seconds


@pytest.mark.parametrize("note,want", [("116 s CPU (1 thread, measured); no GPU run", 116.0), ("4.5 min CPU (1 thread)", 270.0),
                                       ("60-110 s CPU (1 thread, loaded 2-core CPU)", 110.0), ("10.5 min CPU", 630.0),
                                       ("not run here: 4624 members × 10⁵ steps (paper: 90 min on 360 cores)", None),
                                       ("est. hours on one GPU", None)])
def test_runtime_notes_in_seconds(note, want):
    assert seconds(note) == want


def test_bars_are_quiet_off_a_terminal(capsys):
    with WorkBar("x", 10, enabled=True) as bar:  # stdout is captured here, not a terminal
        bar.advance(5)
    with ExpectedBar("y", 1.0, enabled=True):
        pass
    assert capsys.readouterr().out == "" and not bar.enabled


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_coord_check_bar_on_a_terminal(tmp_path):
    import pty

    code = ("from lazyrich.usermodels import coord_check, mlp\n"
            "coord_check(mlp(8, 2, 2), [8, 16], ['sp'], steps=1, seeds=(0,))\n")
    leader, follower = pty.openpty()
    p = subprocess.run([sys.executable, "-c", code], stdout=follower, stderr=subprocess.PIPE, timeout=300)
    os.close(follower)
    out = b""
    try:
        while chunk := os.read(leader, 65536):
            out += chunk
    except OSError:
        pass
    os.close(leader)
    assert p.returncode == 0, p.stderr
    assert b"coord check" in out and b"100%" in out and b"ETA" in out
