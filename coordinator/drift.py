"""Drift: how far accepted results fall from what the serving model predicted for them.

When a cell is leased, the model serving Select predicts its metric (runtime) for the
cell's model, method, workload, batch size and hardware class, and the prediction is
kept in the store with the model's own held-out error for it. When the cell's result is
accepted, the two are compared: the absolute percentage error |measured - predicted| /
measured. Per hardware class the coordinator keeps the median of the latest
:attr:`DriftConfig.window` errors (MdAPE) and flags the class when it exceeds the
model's held-out MdAPE on the same cells by more than :attr:`DriftConfig.margin`: the
model no longer describes that hardware (new drivers, a changed engine, thermal
limits) and should be retrained. Predictions and comparisons run on one background
thread, never on an RPC's.

The held-out MdAPE of a prediction comes from its calibrated 80 % interval (split
conformal on grouped inner folds, :mod:`metainf.selector.meta_learner`): with half-width
h in log cost and normal log errors, the median absolute log error is h x 0.6745 / 1.2816,
and the held-out MdAPE exp(that) - 1.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric

from metainf.coordinator.cell_select import cell_candidates
from metainf.coordinator.store import Store

if TYPE_CHECKING:  # the selector (xgboost, sklearn) loads only where a model serves
    from metainf.selector.artifact import TrainedModel

log = logging.getLogger(__name__)

Z_MEDIAN = 0.6744897501960817
"""The standard normal quantile of 0.75: the median of |e| for e ~ N(0, sigma) is Z_MEDIAN sigma."""

NO_MODEL = "no model loaded: no drift (start the coordinator with --model-dir and train one)"


@dataclass(frozen=True)
class DriftConfig:
    """When a hardware class counts as drifted."""

    margin: float = 0.10
    """Flag a class when its MdAPE exceeds the held-out MdAPE by more than this (0.10 = 10
    percentage points); the coordinator's --drift-margin."""
    window: int = 200
    """Latest results per hardware class the MdAPE is taken over."""
    min_results: int = 5
    """Results a class needs in its window before it can be flagged."""


@dataclass(frozen=True)
class ClassDrift:
    """The drift of one hardware class over its window (errors as fractions)."""

    class_id: str
    label: str
    results: int
    mdape: float
    held_out_mdape: float
    flagged: bool
    model_versions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the field names of the HardwareDrift message."""
        return {"hardware_class": self.class_id, "hardware_label": self.label,
                "results": self.results, "mdape": self.mdape,
                "held_out_mdape": self.held_out_mdape, "flagged": self.flagged,
                "model_versions": list(self.model_versions)}


def held_out_ape(predicted: float, interval: tuple[float, float] | None) -> float | None:
    """The held-out median absolute percentage error of one prediction, read from its
    calibrated 80 % interval (None when the model has no calibration)."""
    from metainf.selector.trust import Z80

    if interval is None or not predicted > 0 or not interval[1] > predicted:
        return None
    half = math.log(interval[1] / predicted)  # the same for runtime and for throughput
    return math.expm1(half * Z_MEDIAN / Z80)


def predict_cell(model: TrainedModel, cell: dict[str, Any], label: str,
                 profile: dict[str, Any]) -> tuple[float, float | None] | None:
    """(predicted metric, its held-out MdAPE) of a cell on its hardware class, as Select
    would predict it; None when the model cannot answer for it (an unknown method, say)."""
    candidates = cell_candidates(model, cell, label, profile, (cell["method"],))
    if candidates is None:
        return None
    candidate = candidates[0]
    if not (candidate.predicted > 0 and math.isfinite(candidate.predicted)):
        return None
    return candidate.predicted, held_out_ape(candidate.predicted, candidate.interval)


class DriftMonitor:
    """Records predictions of leased cells, compares accepted results with them, reports
    each hardware class's drift (also as Prometheus gauges: register it in a registry)."""

    def __init__(self, store: Store, model: Callable[[], TrainedModel | None],
                 config: DriftConfig = DriftConfig()):
        self.store = store
        self.config = config
        self._model = model
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift")

    def _submit(self, fn: Callable, *args: Any) -> Future | None:
        try:
            return self._executor.submit(fn, *args)
        except RuntimeError:  # shut down: the coordinator is stopping
            return None

    def cell_leased(self, cell: dict[str, Any], label: str, profile: dict[str, Any]) -> None:
        """Predict a cell just leased with the serving model (in the background)."""
        model = self._model()
        if model is not None:
            self._submit(self._predict, model, cell, label, profile)

    def _predict(self, model: TrainedModel, cell: dict[str, Any], label: str,
                 profile: dict[str, Any]) -> None:
        try:
            out = predict_cell(model, cell, label, profile)
        except Exception:
            log.exception("drift: predicting cell %s failed", cell["cell_id"])
            return
        if out is None:
            return
        try:
            self.store.record_prediction(cell["cell_id"], cell["class_id"], model.version,
                                         model.metric, out[0], out[1])
        except sqlite3.ProgrammingError:  # store closed
            return

    def result_accepted(self, cell: dict[str, Any]) -> None:
        """Compare a reported cell's accepted result (and, for a replicated cell, the
        copy its group accepted) with its prediction (in the background)."""
        self._submit(self._observe, cell)

    def _observe(self, cell: dict[str, Any]) -> None:
        try:
            ids = [cell["cell_id"]]
            if cell.get("group_id"):
                ids = [r["cell_id"] for r in self.store.query(
                    "SELECT cell_id FROM cells WHERE group_id=?", (cell["group_id"],))]
            for cid in ids:
                ape = self.store.observe_prediction(cid)
                if ape is not None:
                    log.debug("drift: cell %s off its prediction by %.1f %%", cid, 100 * ape)
        except sqlite3.ProgrammingError:
            return

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every prediction and comparison queued so far is done."""
        done = self._submit(lambda: None)
        if done is not None:
            done.result(timeout_s)

    def close(self) -> None:
        """Stop the background thread (queued work is finished first)."""
        self._executor.shutdown(wait=True)

    def note(self) -> str:
        """Why no drift is shown ('' when a model serves)."""
        return NO_MODEL if self._model() is None else ""

    def report(self, class_ids: list[str] | None = None) -> list[ClassDrift]:
        """Drift of every hardware class with compared results (or of `class_ids`), by
        label; empty when no model serves."""
        if self._model() is None:
            return []
        classes = self.store.hardware_classes()
        if class_ids is not None:
            wanted = set(class_ids)
            classes = [h for h in classes if h["class_id"] in wanted]
        out = []
        for h in classes:
            window = self.store.drift_window(h["class_id"], self.config.window)
            if not window:
                continue
            mdape = statistics.median(r["ape"] for r in window)
            refs = [r["held_out_ape"] for r in window if r["held_out_ape"] is not None]
            held = statistics.median(refs) if refs else math.nan
            flagged = (len(window) >= self.config.min_results and math.isfinite(held)
                       and mdape > held + self.config.margin)
            out.append(ClassDrift(h["class_id"], h["label"], len(window), mdape, held, flagged,
                                  tuple(sorted({r["model_version"] for r in window}))))
        return out

    # -- Prometheus collector -----------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Names only, so that registering does not read the store."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("metainf_drift_mdape", "Median absolute percentage error of "
                              "the latest accepted results against the serving model's "
                              "predictions, per hardware class (fraction)",
                              labels=["hardware_class"]),
            GaugeMetricFamily("metainf_drift_held_out_mdape", "The model's held-out median "
                              "absolute percentage error on the same cells (fraction)",
                              labels=["hardware_class"]),
            GaugeMetricFamily("metainf_drift_flagged", "1 when the hardware class's error "
                              "exceeds its held-out error by more than --drift-margin",
                              labels=["hardware_class"]),
            GaugeMetricFamily("metainf_drift_flagged_classes",
                              "Hardware classes flagged for drift"),
        )

    def collect(self) -> Iterator[Metric]:
        """Read the store now; nothing when it is closed."""
        try:
            report = self.report()
        except sqlite3.ProgrammingError:
            return
        mdape, held, flagged, count = self._families()
        for d in report:
            mdape.add_metric([d.label], d.mdape)
            if math.isfinite(d.held_out_mdape):
                held.add_metric([d.label], d.held_out_mdape)
            flagged.add_metric([d.label], float(d.flagged))
        count.add_metric([], float(sum(d.flagged for d in report)))
        yield from (mdape, held, flagged, count)
