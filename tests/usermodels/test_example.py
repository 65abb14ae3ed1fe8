"""examples/mup_transfer.py runs (on synthetic data: the mnist1d package is optional)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

EXAMPLE = Path(__file__).parents[2] / "examples" / "mup_transfer.py"


def test_transfer_example_trains_and_plots(tmp_path):
    spec = importlib.util.spec_from_file_location("mup_transfer", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 40, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    losses = [example.final_loss(s, 32, 2.0**-4, x, y, steps=10, batch=16, seed=0) for s in ("sp", "mup")]
    assert all(math.isfinite(v) and 0 < v < 5 for v in losses)
    lrs = {"sp": np.array([-4.0, -3.0]), "mup": np.array([-4.0, -3.0])}
    path = example.plot({"sp": {32: [1.0, 0.5]}, "mup": {32: [0.8, math.inf]}}, lrs, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000 and path is None
