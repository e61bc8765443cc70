"""Retraining without a person: the coordinator trains, scores and promotes MetaInf versions.

When a campaign finishes (and, with ``every_rows``, after every N new accepted rows of
P) the coordinator trains a new version on every accepted row of the farm, in a child
process (spawned, ``nice`` 19) so that no RPC ever waits on it; one training runs at a
time and requests made meanwhile are coalesced into one more run.

Before promoting, the newest accepted cells are held out of a validation fit: the
newest ``holdout_share`` of the tasks by the time their rows were stored (at least one).
The validation fit and the version serving are scored on them (on those first measured
after the serving version was trained, where some are: it was fitted on the rest; regret
and level error,
:mod:`metainf.selector.evaluation.heldout`). When the validation fit is not worse on
both, within :data:`REGRET_TOLERANCE` and :data:`LEVEL_TOLERANCE`, the same settings are
fitted again on every task and that version is promoted (LATEST names it, Select
switches without a restart), so the newest measurements are in the model that answers.
Otherwise the validation fit is kept unpromoted and the reason is logged. Either way its
manifest records the trigger, rows, tasks, both scores, what they were compared on and
the decision (``info["retrain"]``).
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metainf.coordinator import campaigns
from metainf.coordinator.scheduler import campaign_done
from metainf.coordinator.store import Store
from metainf.p import rows_to_frame

log = logging.getLogger(__name__)

REGRET_TOLERANCE = 0.01
"""How much higher the new version's mean held-out regret may be than the serving one's
and still count as not worse (absolute: 0.01 = its picks 1 % slower on average)."""

LEVEL_TOLERANCE = 0.02
"""How much higher its held-out level error (MdAPE, a fraction) may be: 2 points."""

OUTCOMES = ("promoted", "kept", "skipped", "failed")
"""What one retraining request ends in: a new serving version, a version kept on disk but
not promoted, nothing to do (no new rows, too few tasks), or an error."""


@dataclass(frozen=True)
class RetrainConfig:
    """When the coordinator retrains and how it trains (passed whole to the Retrainer)."""

    on_campaign_done: bool = True
    """Train when a campaign finishes (every cell has a final outcome)."""
    every_rows: int = 0
    """Also train after this many new accepted rows (0: off)."""
    holdout_share: float = 0.2
    """Share of the newest tasks held out of the new version's training to score it."""
    style: str = "rich"
    svd_k: int = 16
    seed: int = 0
    unseen: str = "hardware"
    embedder_path: str | None = None
    train_options: dict[str, Any] = field(default_factory=dict)
    """Further keywords of selector.training.train (e.g. n_estimators, search)."""
    poll_s: float = 2.0
    """How often the retrainer looks at the farm when nothing woke it."""

    def check(self) -> None:
        """Raise ValueError naming the first field that is out of range."""
        if self.every_rows < 0:
            raise ValueError(f"--retrain-every-rows: must be >= 0 (0 = off), got "
                             f"{self.every_rows}")
        if not 0 < self.holdout_share < 1:
            raise ValueError(f"holdout_share: must be between 0 and 1, got {self.holdout_share}")

    @property
    def enabled(self) -> bool:
        """Whether anything triggers a retraining."""
        return self.on_campaign_done or self.every_rows > 0


# -- the data: every accepted row of the farm -----------------------------------------------

def accepted_rows(store: Store) -> int:
    """Accepted done rows of P across every campaign (what a retraining learns from)."""
    return int(store.query("SELECT COUNT(*) AS n FROM results WHERE accepted=1 AND "
                           "status='done'")[0]["n"])


def farm_p(store: Store) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every campaign's P as one export would give it, with a ``stored_at`` column, and
    their meta merged (workloads, models, methods and hardware of all of them)."""
    frames, meta = [], {"workloads": {}, "models": {}, "methods": {}, "hardware": {}}
    for campaign in store.campaigns():
        cid = campaign["campaign_id"]
        rows = store.results(cid)
        if not rows:
            continue
        frame = rows_to_frame(campaigns.result_row(r) for r in rows)
        frame["stored_at"] = [r["stored_at"] for r in rows]
        frames.append(frame)
        for key, value in campaigns.export_meta(store, cid).items():
            if key in meta and isinstance(value, dict):
                meta[key].update(value)
    if not frames:
        return pd.DataFrame(columns=["stored_at"]), meta
    return pd.concat(frames, ignore_index=True), meta


def task_stored_at(table, frame: pd.DataFrame, how: str) -> np.ndarray:
    """Per task of the table, when its done rows were stored (``how``: "min" for the
    first, "max" for the latest; NaN: none)."""
    cols = list(table.mapping.task_cols)
    done = frame[frame["status"] == "done"]
    stamps = done.groupby(cols, dropna=False)["stored_at"].agg(how).rename("__at").reset_index()
    return table.tasks[cols].merge(stamps, on=cols, how="left")["__at"].to_numpy(dtype=float)


def newest_tasks(table, frame: pd.DataFrame, share: float) -> np.ndarray:
    """Boolean mask of the table's tasks held out: the newest ``share`` of them by the
    latest ``stored_at`` of their done rows, at least one (none when there is one task)."""
    n = table.n_tasks
    if n < 2:
        return np.zeros(n, dtype=bool)
    at = task_stored_at(table, frame, "max")
    k = min(n - 1, max(1, math.ceil(share * n)))
    order = np.argsort(-np.nan_to_num(at, nan=-np.inf), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


def _measured_methods(table):
    """The table without methods it never measured (a method seen only in held-out tasks)."""
    from metainf.selector.table import PerfTable

    keep = np.flatnonzero(np.isfinite(table.cost).any(axis=0))
    if len(keep) == len(table.methods):
        return table
    return PerfTable(tasks=table.tasks, methods=[table.methods[j] for j in keep],
                     value=table.value[:, keep], cost=table.cost[:, keep],
                     mapping=table.mapping, meta=table.meta,
                     cobest=None if table.cobest is None else table.cobest[:, keep])


# -- the decision ------------------------------------------------------------------------------

def verdict(new: dict[str, Any], serving: dict[str, Any] | None,
            serving_version: str | None) -> tuple[bool, str]:
    """(promote?, why): promote when nothing serves, or when the new version's held-out
    regret and level error are both no worse than the serving one's (within the
    tolerances). A version that cannot be compared is not promoted over a serving one."""
    if serving_version is None:
        return True, "first version: none was serving"
    if serving is None:
        return True, f"the serving version {serving_version} could not be scored"
    if not new.get("n_tasks"):
        return False, ("no held-out task with two or more measured methods to compare on; "
                       f"{serving_version} keeps serving")
    worse = []
    for key, tol, label in (("regret", REGRET_TOLERANCE, "regret"),
                            ("level_mdape", LEVEL_TOLERANCE, "level error")):
        a, b = new.get(key, math.nan), serving.get(key, math.nan)
        if not math.isfinite(a) and math.isfinite(b):
            worse.append(f"{label} unknown vs {b:.4f}")
        elif math.isfinite(a) and math.isfinite(b) and a > b + tol:
            worse.append(f"{label} {a:.4f} > {b:.4f} + {tol}")
    if worse:
        return False, (f"worse than the serving version {serving_version} on "
                       f"{new['n_tasks']} held-out task(s): {'; '.join(worse)}")
    return True, (f"not worse than {serving_version} on {new['n_tasks']} held-out task(s): "
                  f"regret {new['regret']:.4f} vs {serving.get('regret', math.nan):.4f}, "
                  f"level error {new['level_mdape']:.4f} vs "
                  f"{serving.get('level_mdape', math.nan):.4f}")


def _serving_again(version: str) -> dict[str, Any]:
    """The outcome of a training that gave the serving version again."""
    return {"outcome": "skipped", "version": version,
            "reason": f"the data and settings give the serving version {version} again"}


def retrain_frame(frame: pd.DataFrame, meta: dict[str, Any], model_dir: str | Path,
                  config: RetrainConfig, trigger: str) -> dict[str, Any]:
    """Train a version on a farm P (with ``stored_at``), score it and the serving one on its
    newest tasks held out, save it and promote it or not; the outcome as a dict
    (``outcome`` one of :data:`OUTCOMES`, ``reason``, ``version``, the record)."""
    from metainf.selector.artifact import ModelNotFoundError, latest_version, load_model
    from metainf.selector.evaluation.heldout import score_model
    from metainf.selector.table import FARM_MAPPING, PerfTable, TableError
    from metainf.selector.training import train

    model_dir = Path(model_dir)
    try:
        table = PerfTable.from_frame(frame, FARM_MAPPING, meta)
    except TableError as exc:
        return {"outcome": "skipped", "reason": f"no P to train on: {exc}"}
    held = newest_tasks(table, frame, config.holdout_share)
    if not held.any():
        return {"outcome": "skipped",
                "reason": f"{table.n_tasks} task(s): too few to hold any out and train"}
    training = _measured_methods(table.subset(~held))
    heldout = table.subset(held)
    keys = pd.MultiIndex.from_frame(training.tasks[list(table.mapping.task_cols)])
    done = frame[frame["status"] == "done"]
    rows = int(pd.MultiIndex.from_frame(done[list(table.mapping.task_cols)]).isin(keys).sum())
    model = train(training, None, style=config.style, svd_k=config.svd_k,
                  embedder_path=config.embedder_path, seed=config.seed, unseen=config.unseen,
                  **config.train_options)
    serving_version = latest_version(model_dir) if model_dir.is_dir() else None
    serving, compared_on = None, "every held-out task"
    if serving_version is not None:
        try:
            serving = load_model(model_dir)
        except (ModelNotFoundError, OSError, ValueError, KeyError) as exc:
            log.warning("serving version %s cannot be scored: %s", serving_version, exc)
    if serving is not None:
        # The serving version was fitted on every task it had: compare only on held-out
        # tasks first stored after it was trained, which neither version saw.
        first = task_stored_at(table, frame, "min")
        unseen = held & (first > float(serving.info.get("created_at", 0)))
        if unseen.any() and unseen.sum() < held.sum():
            heldout = table.subset(unseen)
            compared_on = (f"the {int(unseen.sum())} of {int(held.sum())} held-out tasks "
                           f"first measured after {serving_version} was trained")
    new_scores = score_model(model, heldout)
    serving_scores = None
    if serving is not None:
        try:
            serving_scores = score_model(serving, heldout)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("serving version %s cannot be scored: %s", serving_version, exc)
    if serving_version == model.version:
        return _serving_again(model.version)
    promoted, reason = verdict(new_scores, serving_scores, serving_version)
    validated = model.version
    if promoted:
        # Validated on the newest tasks; what serves is the same fit on every task, so the
        # newest measurements (an unsure question's cells) are in the model that answers.
        model = train(_measured_methods(table), None, style=config.style, svd_k=config.svd_k,
                      embedder_path=config.embedder_path, seed=config.seed,
                      unseen=config.unseen, **config.train_options)
        rows, training = int(len(done)), table
        if model.version == serving_version:
            return _serving_again(model.version)
    record = {"trigger": trigger, "trained_at": model.info["created_at"], "rows": rows,
              "tasks": training.n_tasks, "validated_version": validated,
              "compared_on": compared_on,
              "validated_on_tasks": int((~held).sum()),
              "heldout": new_scores, "serving_heldout": serving_scores,
              "serving_version": serving_version, "promoted": promoted, "reason": reason,
              "heldout_share": config.holdout_share,
              "tolerance": {"regret": REGRET_TOLERANCE, "level_mdape": LEVEL_TOLERANCE}}
    model.info["retrain"] = record
    model.save(model_dir, set_latest=promoted)
    return {"outcome": "promoted" if promoted else "kept", "version": model.version,
            "reason": reason, "record": record, "trained_at": model.info["created_at"]}


def retrain_store(db: str | Path, model_dir: str | Path, config: RetrainConfig,
                  trigger: str) -> dict[str, Any]:
    """:func:`retrain_frame` on every accepted row of the farm's database."""
    store = Store(db)
    try:
        frame, meta = farm_p(store)
    finally:
        store.close()
    if frame.empty:
        return {"outcome": "skipped", "reason": "no accepted rows in the farm yet"}
    return retrain_frame(frame, meta, model_dir, config, trigger)


def _child(db: str, model_dir: str, config: RetrainConfig, trigger: str, conn,
           level: int) -> None:
    """The child process: lowest CPU priority, train, send the outcome back."""
    os.nice(19)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s "
                                             "[retrain]: %(message)s")
    try:
        result = retrain_store(db, model_dir, config, trigger)
    except Exception as exc:  # errors as data: the parent logs and counts them
        log.exception("retraining failed")
        result = {"outcome": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    conn.send(json.loads(json.dumps(result, default=float)))
    conn.close()


# -- the loop in the coordinator ------------------------------------------------------------

@dataclass
class _Run:
    process: Any
    conn: Any
    trigger: str
    rows: int
    started: float


class Retrainer:
    """Watches the farm and runs one training child at a time; requests coalesce.

    ``result_stored`` is called from the ReportResult handler (cheap: it only notes the
    campaign and wakes the retrainer's thread); ``on_done`` is told every outcome (the
    coordinator's metrics and its Selector, which loads a promoted version at once).
    """

    def __init__(self, store: Store, model_dir: Path, config: RetrainConfig,
                 on_done: Callable[[dict[str, Any]], None] | None = None):
        config.check()
        self.store = store
        self.model_dir = Path(model_dir)
        self.config = config
        self.on_done = on_done
        self.history: deque[dict[str, Any]] = deque(maxlen=20)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._touched: set[str] = set()
        self._wanted: list[str] = []
        self._run: _Run | None = None
        self._stepping = False
        self._rows_trained = accepted_rows(store)
        self._finished = {c["campaign_id"] for c in store.campaigns()
                          if campaign_done(store, c["campaign_id"])}
        self._thread = threading.Thread(target=self._loop, name="retrainer", daemon=True)

    def start(self) -> Retrainer:
        """Start watching (a daemon thread); first, catch up on what the serving version
        never saw (a coordinator restarted after a campaign ended, before its training)."""
        reason = self._missed_while_down()
        if reason:
            self._want(reason)
            self._wake.set()
        self._thread.start()
        return self

    def _missed_while_down(self) -> str | None:
        """Why to train at once: accepted rows stored after the serving version was
        trained (or with no version at all), in a campaign that has finished (with
        ``on_campaign_done``) or as many as ``every_rows``; None when nothing was missed."""
        from metainf.selector.artifact import ModelNotFoundError, list_versions

        try:
            versions = list_versions(self.model_dir)
        except ModelNotFoundError:
            versions = []
        serving = next((v for v in versions if v["serving"]), None)
        since = float(serving["trained_at"] or 0.0) if serving else 0.0
        rows = self.store.query(
            "SELECT campaign_id, COUNT(*) AS n FROM results WHERE accepted=1 AND "
            "status='done' AND stored_at > ? GROUP BY campaign_id", (since,))
        new = sum(int(r["n"]) for r in rows)
        finished = [r["campaign_id"] for r in rows if r["campaign_id"] in self._finished]
        if not new or not ((self.config.on_campaign_done and finished)
                           or 0 < self.config.every_rows <= new):
            return None
        if serving is None:
            return f"started with {new} accepted rows and no version serving"
        return (f"started with {new} accepted rows stored after serving version "
                f"{serving['version']} was trained")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; a training child still running is terminated."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        run = self._run
        if run is not None and run.process.is_alive():
            run.process.terminate()
            run.process.join(timeout)

    def result_stored(self, campaign_id: str) -> None:
        """A result of this campaign was stored: look at the farm soon."""
        with self._lock:
            self._touched.add(campaign_id)
        self._wake.set()

    def request(self, trigger: str) -> None:
        """Ask for a retraining (coalesced with any other waiting)."""
        with self._lock:
            self._wanted.append(trigger)
        self._wake.set()

    @property
    def busy(self) -> bool:
        """True while a training runs or one is waiting to run."""
        with self._lock:
            return (self._run is not None or bool(self._wanted) or bool(self._touched)
                    or self._stepping)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no training runs or waits; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.busy:
                return True
            time.sleep(0.1)
        return not self.busy

    def status(self) -> dict[str, Any]:
        """What the dashboard shows: running since, last outcomes (newest first)."""
        run = self._run
        return {"running_since": run.started if run else None,
                "running_trigger": run.trigger if run else "",
                "history": list(reversed(self.history))}

    # -- the thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.poll_s if self._run is None else 0.5)
            self._wake.clear()
            with self._lock:
                self._stepping = True
            try:
                self._step()
            except Exception:  # never let the watcher die; the farm goes on
                log.exception("retrainer step failed")
            finally:
                with self._lock:
                    self._stepping = False

    def _step(self) -> None:
        with self._lock:
            self._touched = set()
        # every unfinished campaign, not only those just reported on: a campaign may also
        # finish by a lease running out
        for cid in [c["campaign_id"] for c in self.store.campaigns()]:
            if cid not in self._finished and campaign_done(self.store, cid):
                self._finished.add(cid)
                if self.config.on_campaign_done:
                    self._want(f"campaign {cid} done")
        if self.config.every_rows > 0:
            new = accepted_rows(self.store) - self._rows_trained
            if new >= self.config.every_rows:
                self._want(f"{new} new accepted rows")
        self._reap()
        with self._lock:
            if self._run is not None or not self._wanted:
                return
            trigger = "; ".join(dict.fromkeys(self._wanted))
            self._wanted = []
        rows = accepted_rows(self.store)
        if rows == self._rows_trained and self.history:
            self._finish(trigger, rows, {"outcome": "skipped",
                                         "reason": "no new accepted rows since the last "
                                                   "training"})
            return
        self._start(trigger, rows)

    def _want(self, trigger: str) -> None:
        with self._lock:
            self._wanted.append(trigger)

    def _start(self, trigger: str, rows: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child, name="metainf-retrain", daemon=True,
            args=(str(self.store.path), str(self.model_dir), self.config, trigger, child,
                  log.getEffectiveLevel()))
        process.start()
        child.close()
        self._rows_trained = rows
        with self._lock:
            self._run = _Run(process, parent, trigger, rows, time.time())
        log.info("retraining MetaInf (%s) on %d accepted rows in child process %d", trigger,
                 rows, process.pid)

    def _reap(self) -> None:
        run = self._run
        if run is None:
            return
        result = None
        if run.conn.poll():
            try:
                result = run.conn.recv()
            except (EOFError, OSError):
                result = None
        if result is None and run.process.is_alive():
            return
        run.process.join(5)
        if result is None:
            result = {"outcome": "failed",
                      "reason": f"the training process ended with code {run.process.exitcode}"}
        run.conn.close()
        self._finish(run.trigger, run.rows, result, time.time() - run.started)
        with self._lock:  # busy until the outcome is told and recorded
            self._run = None
        self._wake.set()  # requests that came meanwhile run now

    def _finish(self, trigger: str, rows: int, result: dict[str, Any],
                seconds: float = 0.0) -> None:
        result = {**result, "trigger": trigger, "rows_seen": rows, "at": time.time(),
                  "seconds": round(seconds, 1)}
        outcome = result["outcome"]
        (log.warning if outcome in ("kept", "failed") else log.info)(
            "retraining (%s) %s%s in %.0f s: %s", trigger, outcome,
            f" version {result['version']}" if result.get("version") else "", seconds,
            result.get("reason", ""))
        if self.on_done is not None:  # first: a promoted version serves once it is listed
            try:
                self.on_done(result)
            except Exception:
                log.exception("retrain outcome handler failed")
        self.history.append(result)
