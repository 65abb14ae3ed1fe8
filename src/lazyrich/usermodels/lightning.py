"""A PyTorch Lightning callback around `RegimeMonitor` (needs `lightning` or `pytorch_lightning`)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import LazyrichError
from .monitor import RegimeMonitor, Verdict

try:
    import lightning.pytorch as _pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as _pl  # type: ignore[no-redef]
    except ImportError:
        _pl = None  # type: ignore[assignment]

_Base: Any = _pl.Callback if _pl is not None else object


class RegimeCallback(_Base):  # type: ignore[misc, valid-type]
    """Builds a `RegimeMonitor` on the LightningModule at fit start (probe moved to its device), steps it
    after every training batch, logs its summary with `log_dict` (prefix "lazyrich/") and keeps the
    final verdict in `.verdict`. Keyword arguments go to `RegimeMonitor`."""

    def __init__(self, probe: Tensor, **monitor_kwargs: Any) -> None:
        if _pl is None:
            raise LazyrichError("the Lightning callback needs lightning: pip install lightning (or use RegimeMonitor)")
        super().__init__()
        self.probe, self.kwargs = probe, monitor_kwargs
        self.monitor: RegimeMonitor | None = None
        self.verdict: Verdict | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.monitor = RegimeMonitor(pl_module, self.probe.to(pl_module.device), **self.kwargs)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        summary = self.monitor.step() if self.monitor is not None else None
        if summary is not None:
            pl_module.log_dict({f"lazyrich/{k}": v for k, v in summary.items() if k != "step"})

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.verdict = self.monitor.verdict()
