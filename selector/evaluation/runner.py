"""Run every (selector, fold) of an evaluation as a Ray task, or serially, with one result.

Features are built in the driver, once per (protocol, fold, feature config): a
TaskFeaturizer is fitted on the training fold only and shares one embedder (and so one
embedding cache) across folds, so Ray tasks receive plain arrays and never embed text.
Each Ray task fits one selector on its fold, predicts the test tasks and scores them; a
serial run calls the same function in-process and gives identical results.
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from metainf.selector.baselines.global_best import global_scores
from metainf.selector.baselines.registry import (
    make_selector,
    parse_selectors,
    selector_class,
    selector_names,
)
from metainf.selector.evaluation.fold_data import FeatureConfig, FoldData, build_fold_data
from metainf.selector.evaluation.metrics import oracle_outcomes, summarise, task_outcomes
from metainf.selector.evaluation.protocols import Fold, group_column, make_folds
from metainf.selector.table import PerfTable

log = logging.getLogger(__name__)

MAIN_STYLE = FeatureConfig()
"""Feature configuration of the main comparison unless the caller picks another."""


@dataclass(frozen=True)
class ProtocolSpec:
    """One protocol to run: its name, and the column for the generic holdout."""

    name: str
    holdout_col: str | None = None

    @property
    def label(self) -> str:
        """How the protocol appears in reports ('loho', 'holdout:COL', ...)."""
        return f"holdout:{self.holdout_col}" if self.name == "holdout" else self.name


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything one evaluation run needs besides the table."""

    selectors: tuple[str, ...] = tuple(selector_names())
    protocols: tuple[ProtocolSpec, ...] = (ProtocolSpec("random"),)
    features: FeatureConfig = MAIN_STYLE
    ablation: tuple[FeatureConfig, ...] = ()
    ablation_selector: str = "metainf"
    n_test: int = 1000
    n_splits: int = 5
    k: int = 5
    seed: int = 0
    serial: bool = False
    ray_address: str | None = None
    num_cpus: int | None = None
    restrict_to_candidates: bool = True
    progress: bool = True


@dataclass(frozen=True)
class Job:
    """One unit of work: a selector on one fold of one protocol under one feature config."""

    selector: str
    protocol: str
    fold: str
    features: FeatureConfig


@dataclass
class JobResult:
    """What a job returns: per-task outcomes (empty on failure) and timings."""

    job: Job
    outcomes: pd.DataFrame
    fit_s: float = float("nan")
    predict_ms: float = float("nan")
    error: str = ""


@dataclass
class EvaluationResult:
    """Per-task outcomes and per-fold metrics of the main comparison and the ablation."""

    outcomes: pd.DataFrame
    metrics: pd.DataFrame
    ablation_outcomes: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablation: pd.DataFrame = field(default_factory=pd.DataFrame)
    folds: dict[str, list[Fold]] = field(default_factory=dict)
    wall_s: float = float("nan")
    roofline_known: tuple[int, int] | None = None
    """(tasks whose roofline is known, tasks): the level of the others is learned alone."""


def run_job(job: Job, data: FoldData, seed: int = 0,
            restrict_to_candidates: bool = True) -> JobResult:
    """Fit the job's selector on the training fold, predict the test tasks, score them."""
    try:
        params = _job_params(job.selector, seed)
        takes = make_selector(job.selector).get_params(deep=False)
        if data.roofline_cols is not None and "roofline_cols" in takes:
            params["roofline_cols"] = data.roofline_cols
        if data.hardware_cols is not None and "local_cols" in takes:
            params["local_cols"] = data.hardware_cols
        selector = make_selector(job.selector, **params)
        t0 = time.perf_counter()
        if data.groups_train is not None and _takes_groups(selector):
            selector.fit(data.X_train, data.C_train, data.M, groups=data.groups_train)
        else:
            selector.fit(data.X_train, data.C_train, data.M)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = selector.predict_cost(data.X_test, data.M)
        predict_ms = (time.perf_counter() - t0) * 1000.0 / max(len(data.X_test), 1)
        interval = (selector.predict_interval(data.X_test, data.M)
                    if hasattr(selector, "predict_interval") else None)
        out = task_outcomes(data.C_test, pred, data.methods,
                            sbs_scores=global_scores(data.C_train),
                            restrict_to_candidates=restrict_to_candidates,
                            predict_ms=predict_ms, cobest=data.cobest_test,
                            available=data.available_test, level=selector.predicts_level,
                            interval=interval)
        out["task"] = data.test_idx
        return JobResult(job, _tag(out, job), fit_s, predict_ms)
    except Exception as exc:  # a failed job is a result (errors as data), not a crash
        log.debug("job %s failed:\n%s", job, traceback.format_exc())
        return JobResult(job, pd.DataFrame(), error=f"{type(exc).__name__}: {exc}")


def _takes_groups(selector) -> bool:
    """Whether a selector's fit accepts ``groups`` (grouped inner validation)."""
    return "groups" in inspect.signature(selector.fit).parameters


def _job_params(name: str, seed: int) -> dict:
    """The run's seed (random_state or seed) and one thread, for selectors that take them.

    One thread per job matches the Ray task's one CPU and keeps serial and Ray runs equal.
    """
    params = make_selector(name).get_params(deep=False)
    out = {key: seed for key in ("random_state", "seed") if key in params}
    if "n_jobs" in params:
        out["n_jobs"] = 1
    return out


def _tag(out: pd.DataFrame, job: Job) -> pd.DataFrame:
    out.insert(0, "fold", job.fold)
    out.insert(0, "protocol", job.protocol)
    out.insert(0, "selector", job.selector)
    out["style"] = job.features.style
    out["svd_k"] = job.features.svd_k
    return out


def plan_jobs(config: EvaluationConfig, folds: dict[str, list[Fold]]) -> list[Job]:
    """Main comparison (every selector, main features) then the ablation grid, deduplicated."""
    jobs: list[Job] = []
    for proto, proto_folds in folds.items():
        for fold in proto_folds:
            for name in config.selectors:
                jobs.append(Job(name, proto, fold.name, config.features))
            for feats in config.ablation:
                jobs.append(Job(config.ablation_selector, proto, fold.name, feats))
    return list(dict.fromkeys(jobs))


def run_evaluation(table: PerfTable, config: EvaluationConfig, *, embedder=None,
                   featurizer_factory: Callable | None = None) -> EvaluationResult:
    """Evaluate the configured selectors under the configured protocols on ``table``."""
    start = time.perf_counter()
    parse_selectors(",".join(config.selectors))
    folds = {spec.label: make_folds(table, spec.name, n_test=config.n_test,
                                    n_splits=config.n_splits, k=config.k, seed=config.seed,
                                    holdout_col=spec.holdout_col)
             for spec in config.protocols}
    group_cols = {spec.label: group_column(table, spec.name, spec.holdout_col)
                  for spec in config.protocols}
    jobs = plan_jobs(config, folds)
    feature_configs = list(dict.fromkeys(j.features for j in jobs))
    if embedder is None and featurizer_factory is None and any(
            f.style != "onehot" for f in feature_configs):
        from metainf.selector.embeddings import Embedder

        embedder = Embedder()  # one model and one in-memory cache for every fold
    data: dict[tuple[str, str, FeatureConfig], FoldData] = {}
    for proto, proto_folds in folds.items():
        for fold in proto_folds:
            for feats in feature_configs:
                if any(j.protocol == proto and j.fold == fold.name and j.features == feats
                       for j in jobs):
                    data[proto, fold.name, feats] = build_fold_data(
                        table, fold, feats, embedder=embedder, seed=config.seed,
                        featurizer_factory=featurizer_factory, group_col=group_cols[proto])
    log.info("evaluating %d job(s): %d selector(s), %d fold(s), %d feature config(s)",
             len(jobs), len(config.selectors), sum(len(f) for f in folds.values()),
             len(feature_configs))
    if config.serial:
        results = _run_serial(jobs, data, config)
    else:
        results = _run_ray(jobs, data, config)
    for r in results:
        if r.error:
            log.warning("%s on %s/%s failed: %s", r.job.selector, r.job.protocol, r.job.fold,
                        r.error)
    main = [r for r in results if r.job.features == config.features
            and r.job.selector in config.selectors]
    abl = [r for r in results if r.job.selector == config.ablation_selector
           and r.job.features in config.ablation]
    outcomes = _concat([r.outcomes for r in main])
    metrics = fold_metrics(main, outcomes)
    ablation_outcomes = _concat([r.outcomes for r in abl])
    ablation = fold_metrics(abl, ablation_outcomes, with_oracle=False, keep_features=True)
    return EvaluationResult(outcomes, metrics, ablation_outcomes, ablation, folds,
                            time.perf_counter() - start, _roofline_known(data))


def _roofline_known(data: dict) -> tuple[int, int] | None:
    """How many of the table's tasks have a known roofline (from any fold's features)."""
    for fd in data.values():
        if fd.roofline_cols is None:
            continue
        col = fd.roofline_cols[1]
        known = int((fd.X_train[:, col] > 0.5).sum() + (fd.X_test[:, col] > 0.5).sum())
        return known, len(fd.X_train) + len(fd.X_test)
    return None


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fold_metrics(results: Sequence[JobResult], outcomes: pd.DataFrame, *,
                 with_oracle: bool = True, keep_features: bool = False) -> pd.DataFrame:
    """One row per job (selector, protocol, fold), plus an oracle row per fold."""
    rows = []
    oracle_done = set()
    for r in results:
        j = r.job
        row = {"selector": j.selector, "protocol": j.protocol, "fold": j.fold}
        if keep_features:
            row.update(style=j.features.style, svd_k=j.features.svd_k)
        row.update(summarise(r.outcomes) if not r.outcomes.empty else
                   {"n_tasks": 0, "n_single": 0})
        row["fit_s"] = r.fit_s
        row["error"] = r.error
        rows.append(row)
        if with_oracle and not r.outcomes.empty and (j.protocol, j.fold) not in oracle_done:
            oracle_done.add((j.protocol, j.fold))
            o = {"selector": "oracle", "protocol": j.protocol, "fold": j.fold}
            o.update(summarise(oracle_outcomes(r.outcomes)))
            o.update(fit_s=0.0, error="")
            rows.append(o)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    order = {"oracle": len(selector_names())} | {n: i for i, n in enumerate(selector_names())}
    df["_o"] = df["selector"].map(order)
    keys = ["protocol", "fold", "_o"] + (["style", "svd_k"] if keep_features else [])
    return df.sort_values(keys, kind="stable").drop(columns="_o").reset_index(drop=True)


def _progress(config: EvaluationConfig, total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]evaluate"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.description}"),
                    console=Console(stderr=True), disable=not config.progress, transient=False)


def _run_serial(jobs: list[Job], data: dict, config: EvaluationConfig) -> list[JobResult]:
    results = []
    with _progress(config, len(jobs)) as bar:
        task = bar.add_task("", total=len(jobs))
        for job in jobs:
            results.append(run_job(job, data[job.protocol, job.fold, job.features], config.seed,
                                   config.restrict_to_candidates))
            bar.update(task, advance=1, description=f"{job.selector} {job.fold}")
    return results


def heaviest_first(jobs: Sequence[Job]) -> list[tuple[int, Job]]:
    """(index, job) in the order to start them: heaviest selector first, then plan order.

    Longest-first scheduling: with MetaInf's folds started first, the cheap jobs fill the
    workers' last minutes instead of one long fit running alone after them.
    """
    weight = {name: selector_class(name).fit_weight for name in {j.selector for j in jobs}}
    return sorted(enumerate(jobs), key=lambda ij: (-weight[ij[1].selector], ij[0]))


def _run_ray(jobs: list[Job], data: dict, config: EvaluationConfig) -> list[JobResult]:
    import ray

    started = False
    if not ray.is_initialized():
        kwargs = {"address": config.ray_address, "include_dashboard": False,
                  "logging_level": logging.WARNING, "configure_logging": True}
        if config.ray_address is None and config.num_cpus is not None:
            kwargs["num_cpus"] = config.num_cpus
        ray.init(**kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(run_job)
        refs = {key: ray.put(value) for key, value in data.items()}
        pending = {remote.remote(job, refs[job.protocol, job.fold, job.features], config.seed,
                                 config.restrict_to_candidates): i
                   for i, job in heaviest_first(jobs)}
        results: list[JobResult | None] = [None] * len(jobs)
        with _progress(config, len(jobs)) as bar:
            task = bar.add_task("", total=len(jobs))
            waiting = list(pending)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    i = pending[ref]
                    results[i] = ray.get(ref)
                    bar.update(task, advance=1,
                               description=f"{jobs[i].selector} {jobs[i].fold}")
        return [r for r in results if r is not None]
    finally:
        if started:
            ray.shutdown()
