"""MetaInf: XGBoost on [task features, method features], a ranking head and a level head.

Runtimes span orders of magnitude across tasks while a choice within a task turns on
differences of a few percent, so one regressor of absolute log cost spends its capacity
on the task's level. MetaInf therefore fits two boosters on the same pair rows:

- the *ranking head* orders the methods of a task. It starts from a prior it cannot do
  worse than, Global Best's ranking of the training tasks (per method, the log of its
  mean normalised cost), and regresses only the departures from it: the task-relative
  log cost (log cost minus the task's mean over its measured methods) minus the prior's.
  Its score is ``prior + alpha * shrink(departure, delta)``: a departure is kept only
  beyond ``delta`` (in log cost) and weighted by ``alpha``; ``alpha = 0`` is the prior
  itself. The hyper-parameters and (alpha, delta) are chosen by inner cross-validation
  on the training tasks, with whole groups held out (the hardware for a selector asked
  about unseen hardware, the model for unseen models); a departure is kept only where
  it beats the prior by more than one standard error of the inner folds (see
  :func:`~metainf.selector.base.one_se_variant`), and where no fold holds out a group
  unlike the rest (a single training hardware) nothing says a departure carries to a
  new group, so the prior answers it. With the hardware's feature columns
  (``local_cols``) the search also tries each hardware's own prior (Global Best of its
  training tasks) where the hardware was trained on. A task whose hardware is a twin of
  a training hardware (see :mod:`metainf.selector.regimes`) and whose same task was
  measured there takes that measured ranking (:func:`twin_priors`). Each boosting
  round averages :data:`PARALLEL_TREES` trees on their own samples, so the choices do
  not hang on the seed;
- the *level head* regresses absolute log cost (the paper's original target); it only
  sets the task's level, which budgets need (cost = price per hour x runtime).

The prediction is ``log cost(t, m) = ranking(t, m) + level(t)`` with ``level(t)`` the
mean over the training methods of ``level head(t, m') - ranking(t, m')``: the ranking
head's order, the level head's mean. Features of new rows are snapped to the nearest
training value first (see :mod:`metainf.selector.snapping`), so an unseen GPU whose
facts lie between two known ones falls with the nearer one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import (
    NOT_SEARCH_CONFIG,
    PairwiseRegressorSelector,
    log_cost,
    pair_rows,
    relative_log_cost,
)
from metainf.selector.baselines.scores import column_mean, normalised_cost
from metainf.selector.regimes import GroupSignature
from metainf.selector.search import (
    SearchCache,
    grid_points,
    n_groups,
    search_key,
    task_splits,
)
from metainf.selector.snapping import NearestValueSnapper

DEFAULT_PARAM_GRID: dict[str, tuple] = {
    "max_depth": (4, 6),
    "min_child_weight": (1.0, 5.0, 10.0),
    "n_estimators": (200, 400, 800),
}
"""Ranking-head hyper-parameters searched by default: 6 fits per inner fold, since the
rounds are read off one fit. The learning rate stays at the constructor's (the staged
rounds cover the rate x rounds trade-off); depth 8, a second rate and a wider grid cost
2-3x more and chose worse on noisy tables (a noisier choice, not a better model)."""

DEPARTURE_VARIANTS: tuple[dict[str, float], ...] = (
    {"alpha": 0.0, "delta": 0.0},
    {"alpha": 0.5, "delta": 0.1}, {"alpha": 1.0, "delta": 0.1},
    {"alpha": 0.5, "delta": 0.03}, {"alpha": 1.0, "delta": 0.03},
    {"alpha": 0.5, "delta": 0.01}, {"alpha": 1.0, "delta": 0.01},
    {"alpha": 0.5, "delta": 0.0}, {"alpha": 1.0, "delta": 0.0},
)
"""How far the ranking head may depart from the prior, most conservative first (the
search's ties go to the first): ``alpha`` weighs a predicted departure, ``delta`` (log
cost: 0.03 is 3 %) is shrunk off it first."""

BOOSTER_PARAMS = ("n_estimators", "max_depth", "learning_rate", "subsample",
                  "colsample_bytree", "min_child_weight")
"""The constructor's XGBoost hyper-parameters, shared by both heads unless searched."""

LEVEL_PARAM_GRID: dict[str, tuple] = {"colsample_bynode": (1.0, 0.5, 0.3)}
"""Level-head hyper-parameters searched by default, scored by the level's own error on
held-out groups: the share of features each split may choose from. Task features are
many redundant encodings of a few facts (embedding components, catalog facts); a tree
free to pick any of them follows whichever separates the training groups best, often
one that means nothing on a new group, while sampling features per split averages the
encodings, as a random forest does. Listed from the tree's own choice (1.0) down."""

PARALLEL_TREES = 4
"""Trees per boosting round, each on its own row and column sample, averaged: a bagged
booster whose choices barely move with the seed (one tree per round moved the pooled
accuracy on the vendored table by up to 25 points from seed to seed)."""

INTERVAL_COVERAGE = 0.8
"""Nominal coverage of the interval every prediction carries."""

NO_SEARCH_DEPARTURE = {"alpha": 1.0, "delta": 0.0}
"""The departure without a search: the ranking head's prediction in full."""

PRIOR_ONLY = {"alpha": 0.0, "delta": 0.0}
"""No departure: the global prior itself (Global Best's ranking)."""

MIN_LOCAL_TASKS = 4
"""Tasks with a choice a hardware needs in training before it gets a prior of its own."""

MIN_TASK_PRIOR_TASKS = 1
"""Tasks with a choice that the same task needs on the other training groups before it
gets a prior of its own (the inner folds judge whether so few are worth it)."""

MIN_MEASURED_TO_FILL = 2
"""Measured methods a training task needs before its gaps are filled for the ranking
heads (see :func:`filled_by_level`). Filling single-measured tasks as well gained more
on a sparse synthetic table but cost the active campaigns on the vendored table (full
accuracy reached at 52.6 % of its cells instead of 36.8 %)."""

PRIOR_KINDS = ("global", "hardware", "task")
"""The priors a departure may start from, most general first (saved by index)."""

UNMEASURED_PRIOR_PENALTY = 1.0
"""Prior of a method no training task measured: the worst measured prior plus this (log
cost, a factor e), so that it is chosen only on strong evidence."""

LEVEL_FILE = "xgboost.ubj"
"""File name of the level head (absolute log cost) in a saved model folder."""

RANKER_FILE = "xgboost-ranker.ubj"
"""File name of the ranking head (task-relative log cost) in a saved model folder."""

SEEN_RANKER_FILE = "xgboost-ranker-seen.ubj"
"""File name of the ranking head for tasks like a training group, where there is one."""

STATE_FILE = "metainf-state.npz"
"""The selector's arrays beside its boosters: snapping values, training method features."""


def prior_log_scores(C: np.ndarray) -> np.ndarray:
    """Global Best's knowledge as a score per method: log mean normalised cost over the
    tasks of C (lower is better); a method never measured gets the worst plus a penalty."""
    with np.errstate(divide="ignore", invalid="ignore"):
        prior = np.log(column_mean(normalised_cost(C), fallback=np.nan))
    if np.isfinite(prior).any():
        worst = np.nanmax(prior[np.isfinite(prior)])
        prior = np.where(np.isfinite(prior), prior, worst + UNMEASURED_PRIOR_PENALTY)
    else:
        prior = np.zeros(prior.shape)
    return prior


def filled_by_level(C: np.ndarray, level: Callable[[], np.ndarray]) -> tuple[np.ndarray, int]:
    """C with the unmeasured cells of tasks with :data:`MIN_MEASURED_TO_FILL` measured
    methods or more (of methods measured elsewhere) filled from the level head's log
    cost ``level()`` [n, m] (called only when there is a gap to fill), and how many
    cells were filled.

    A task's relative log cost is taken about the mean of its *measured* methods, so on a
    sparse table (a method never run on one vendor's hardware, cells dropped at random)
    the same speed reads as a different departure from task to task. The level head
    learned every measured cell's cost; its prediction of a gap, shifted so that on the
    task's measured methods it meets the measurements in the mean (its error of the
    task's level drops out), puts the gap on the task's own level, and the ranking heads
    learn from tasks that are all relative to the same methods (their priors stay the
    measurements' own). A task with one measured method is left as it is: nothing of
    its own anchors an order, and its gaps are most often what it could not run (the
    vendored table's BLOOM-176B, measured at tensor-parallel 8 only). A cell that ran out
    of memory is unmeasured here too: memory fit, not the ranking, rules those out at
    Select.
    """
    C = np.asarray(C, dtype=float)
    L = log_cost(C)
    measured = np.isfinite(L)
    gaps = (~measured & measured.any(axis=0, keepdims=True)
            & (measured.sum(axis=1, keepdims=True) >= MIN_MEASURED_TO_FILL))
    if not gaps.any():
        return C, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task with nothing measured
        predicted = level()
        shift = np.nanmean(np.where(measured, L - predicted, np.nan), axis=1, keepdims=True)
    return np.where(gaps, np.exp(predicted + shift), C), int(gaps.sum())


def roofline_margin(rows: np.ndarray, cols: tuple[int, int] | None) -> np.ndarray | None:
    """Per pair row, the log roofline seconds where known and 0 elsewhere: the level
    head's base margin (None without roofline columns: the head keeps its own bias)."""
    if cols is None:
        return None
    return np.where(rows[:, cols[1]] > 0.5, rows[:, cols[0]], 0.0)


def shrink(departure: np.ndarray, delta: float) -> np.ndarray:
    """Soft threshold: a departure smaller than delta is none, a larger one loses delta."""
    return np.sign(departure) * np.maximum(np.abs(departure) - delta, 0.0)


def measured_log_scores(C: np.ndarray) -> np.ndarray:
    """Log mean normalised cost per method over the tasks of C, NaN where none measured
    it (unlike :func:`prior_log_scores`, a gap stays a gap)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(column_mean(normalised_cost(C), fallback=np.nan))


def twin_keys(X: np.ndarray, regime: GroupSignature) -> np.ndarray:
    """X with one more column: the index of the training group nearest to each task's
    signature, NaN where none is within the seen distance (a task with no twin)."""
    twin = regime.twin(X)
    return np.column_stack([np.asarray(X, dtype=float), np.where(twin >= 0, twin, np.nan)])


def twin_priors(X: np.ndarray, C: np.ndarray, regime: GroupSignature) -> LocalPriors:
    """The measured ranking of each training task (NaN where a method was not measured),
    keyed by its features off the group's signature and by its group: looked up with
    :func:`twin_keys`, a task on hardware whose facts match a training hardware's (a
    twin: two names of one GPU, a power-capped one; or the hardware itself) finds the
    same task measured there."""
    others = np.setdiff1d(np.arange(X.shape[1]), regime.columns)
    return LocalPriors.fit(twin_keys(X, regime), C, np.append(others, X.shape[1]),
                           MIN_TASK_PRIOR_TASKS, measured_log_scores)


def with_twin(score: np.ndarray, twin: np.ndarray, owner: np.ndarray, n_tasks: int,
              basis: np.ndarray) -> np.ndarray:
    """Ranking scores of pair rows (row i of task ``owner[i]``) with each method the twin
    measured (``twin`` finite) taking the twin's measured score, shifted so that over
    those methods it meets the model's scores in the mean (over the rows in ``basis``:
    each task's training methods once, so that a score does not hang on which rows were
    asked with it); the methods the twin did not measure keep the model's. The measured
    order stands, and the model places the gaps around it."""
    found = np.isfinite(twin)
    if not found.any():
        return score
    used = found & basis
    count = np.bincount(owner[used], minlength=n_tasks)
    total = np.bincount(owner[used], weights=(score - twin)[used], minlength=n_tasks)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = total / count
    take = found & np.isfinite(shift[owner])
    return np.where(take, twin + shift[owner], score)


def conformal_quantile(errors: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile of held-out absolute errors for a nominal coverage
    (the ceil((n + 1) coverage) / n empirical quantile, capped at the largest error)."""
    errors = np.asarray(errors, dtype=float)
    n = errors.size
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(errors, level, method="higher"))


class LocalPriors:
    """Global Best's ranking per key: the prior of the training tasks with the same values
    in ``columns`` (the hardware's feature columns: a prior per hardware; every column
    but the held-out group's: a prior per task of the other groups), where at least
    ``min_tasks`` of them had a choice; the global prior elsewhere (a key never trained
    on, or too few of its tasks)."""

    def __init__(self, columns: np.ndarray, keys: np.ndarray, priors: np.ndarray):
        self.columns = np.asarray(columns, dtype=int)
        self.keys = np.asarray(keys, dtype=float).reshape(-1, self.columns.size)
        self.priors = np.asarray(priors, dtype=float)
        self._index: dict[bytes, int] | None = None

    @classmethod
    def fit(cls, X: np.ndarray, C: np.ndarray, columns, min_tasks: int = MIN_LOCAL_TASKS,
            score: Callable[[np.ndarray], np.ndarray] = prior_log_scores) -> LocalPriors:
        """Per distinct key of X's tasks with enough choices, the prior of its tasks
        (``score`` of their costs)."""
        columns = np.asarray(columns, dtype=int)
        keys, inverse = np.unique(np.asarray(X, dtype=float)[:, columns], axis=0,
                                  return_inverse=True)
        inverse = inverse.reshape(-1)
        C = np.asarray(C, dtype=float)
        choices = np.isfinite(C).sum(axis=1) >= 2
        kept = np.flatnonzero(np.bincount(inverse[choices], minlength=len(keys)) >= min_tasks)
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1])
        priors = [score(C[members[k]]) for k in kept]
        return cls(columns, keys[kept], np.array(priors).reshape(len(kept), C.shape[1]))

    def rows(self, X: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """The prior [n, m] of each task of X: its key's, else ``fallback``. A key is
        found by its exact values first (a dictionary lookup: the search asks this of
        every held-out fold, with hundreds of columns per key), and only a row with no
        exact match is compared within floating-point tolerance (a row with a NaN, as a
        task with no twin has, matches nothing and is not compared)."""
        X = np.asarray(X, dtype=float)
        out = np.tile(np.asarray(fallback, dtype=float), (X.shape[0], 1))
        if not (self.keys.shape[0] and X.shape[0]):
            return out
        if self._index is None:
            self._index = {}
            for k, key in enumerate(np.ascontiguousarray(self.keys)):
                self._index.setdefault(key.tobytes(), k)
        values = np.ascontiguousarray(X[:, self.columns])
        found = np.array([self._index.get(v.tobytes(), -1) for v in values], dtype=int)
        todo = np.flatnonzero((found < 0) & np.isfinite(values).all(axis=1))
        if todo.size:
            match = np.all(np.isclose(values[todo, None], self.keys[None]), axis=2)
            found[todo] = np.where(match.any(axis=1), match.argmax(axis=1), -1)
        hit = found >= 0
        out[hit] = self.priors[found[hit]]
        return out

    def to_arrays(self, kind: str) -> dict[str, np.ndarray]:
        """The state as arrays (for an .npz), named after the prior's kind."""
        return {f"local_{kind}_columns": self.columns, f"local_{kind}_keys": self.keys,
                f"local_{kind}_priors": self.priors}

    @classmethod
    def from_arrays(cls, state, kind: str) -> LocalPriors | None:
        """Inverse of :meth:`to_arrays`; None when the state holds none of this kind."""
        if f"local_{kind}_columns" not in state:
            return None
        return cls(state[f"local_{kind}_columns"], state[f"local_{kind}_keys"],
                   state[f"local_{kind}_priors"])


class PriorDeparture:
    """The ranking head's target: task-relative log cost minus the prior's, per pair.

    Fitted on training costs (the prior is theirs, and so are the local priors: per
    hardware where ``local_cols`` name the hardware's feature columns, per task of the
    other groups where ``groups`` say which columns name a group); called on any cost
    table.
    """

    __name__ = "prior_departure"

    def __init__(self, C_train: np.ndarray, X_train: np.ndarray | None = None,
                 local_cols=None, groups=None):
        self.prior = prior_log_scores(C_train)
        self.local: dict[str, LocalPriors] = {}
        if X_train is None:
            return
        if local_cols is not None:
            self.local["hardware"] = LocalPriors.fit(X_train, C_train, local_cols)
        if n_groups(groups) >= 2:
            own = GroupSignature.fit(X_train, groups).columns
            others = np.setdiff1d(np.arange(X_train.shape[1]), own)
            if others.size:
                self.local["task"] = LocalPriors.fit(X_train, C_train, others,
                                                     MIN_TASK_PRIOR_TASKS)

    def __call__(self, C: np.ndarray) -> np.ndarray:
        """Departure of each measured pair from the prior (NaN where unmeasured)."""
        rel = relative_log_cost(C)
        p = np.where(np.isfinite(rel), self.prior[None, :], np.nan)
        with np.errstate(invalid="ignore"):
            centred = p - np.nanmean(np.where(np.isfinite(p), p, np.nan), axis=1,
                                     keepdims=True)
        return rel - centred

    def base(self, X: np.ndarray | None, variant: Mapping[str, Any]) -> np.ndarray:
        """The prior [n, m] a variant starts from: its local kind's or the global one."""
        local = self.local.get(variant.get("prior", "global"))
        if local is None or X is None:
            return self.prior[None, :]
        return local.rows(X, self.prior)

    def scores(self, departure: np.ndarray, variant: Mapping[str, Any],
               X: np.ndarray | None = None) -> np.ndarray:
        """Ranking scores: the prior plus the weighted, shrunk predicted departure."""
        return self.base(X, variant) + variant["alpha"] * shrink(departure, variant["delta"])


class MetaInfSelector(PairwiseRegressorSelector):
    """The paper's meta-learner f(E_data, E_model, E_hw, E_method) -> log cost, by XGBoost.

    Fit on task features X (workload, model and hardware embeddings plus facts) and
    method features M. ``n_estimators`` ... ``min_child_weight`` configure the level head,
    and the ranking head where ``search`` is off or the grid leaves them out;
    ``param_grid`` (None: :data:`DEFAULT_PARAM_GRID`) is searched with ``cv`` inner folds
    over the training tasks, the outcome cached under ``cache_dir`` (None:
    $METAINF_SEARCH_CACHE or ~/.cache/metainf/search) unless ``cache`` is off.
    ``roofline_cols`` (the task feature columns of the roofline's log seconds and whether
    it is known, see :mod:`metainf.selector.roofline`) make the level head learn an
    efficiency relative to the roofline where it is known. ``local_cols`` (the hardware's
    task feature columns) let the search try, beside the global prior, the prior of each
    hardware's own training tasks (see :class:`LocalPriors`), kept only where the inner
    folds prefer it. ``parallel_trees`` trees per boosting round are averaged. The level
    head's ``level_grid`` (None: :data:`LEVEL_PARAM_GRID`) is searched on the same inner
    folds by the level's held-out error, unless ``level_params`` fix it (or ``search`` is
    off: the constructor's values). ``relative=False`` gives the single absolute
    regressor of the paper; ``prior=False`` a ranking head of task-relative log cost with
    no prior. ``fit`` takes ``groups`` (one label per task) so that the inner folds hold
    whole groups out. ``impute`` (on by default) fits the ranking heads on the training
    table with its unmeasured cells filled from the level head (see
    :func:`filled_by_level`). Deterministic for a given ``seed`` and data. ``n_jobs``
    defaults to 1: with torch loaded in the same process (the sentence-transformer), XGBoost's
    OpenMP threads were seen to run 15-30x slower on a busy 2-core machine, and the
    evaluation harness parallelises over folds instead.
    """

    fit_weight = 50.0
    """Its searches and calibration fit some 60 boosters: a fold takes 2-3 minutes where
    the baselines take seconds (a 5,000-row table, one core)."""

    def __init__(self, n_estimators: int = 400, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.9, colsample_bytree: float = 0.8,
                 min_child_weight: float = 1.0, seed: int = 0, n_jobs: int | None = 1,
                 relative: bool = True, search: bool = True,
                 param_grid: Mapping[str, Sequence[Any]] | None = None, cv: int = 3,
                 cache: bool = True, cache_dir: str | None = None, prior: bool = True,
                 calibrate: bool = True, roofline_cols: tuple[int, int] | None = None,
                 local_cols: Sequence[int] | None = None,
                 parallel_trees: int = PARALLEL_TREES,
                 level_grid: Mapping[str, Sequence[Any]] | None = None,
                 level_params: Mapping[str, Any] | None = None, impute: bool = True):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.seed = seed
        self.n_jobs = n_jobs
        self.relative = relative
        self.search = search
        self.param_grid = param_grid
        self.cv = cv
        self.cache = cache
        self.cache_dir = cache_dir
        self.prior = prior
        self.calibrate = calibrate
        self.roofline_cols = roofline_cols
        self.local_cols = local_cols
        self.parallel_trees = parallel_trees
        self.level_grid = level_grid
        self.level_params = level_params
        self.impute = impute

    # -- hooks of the pairwise base ------------------------------------------------------

    def _make_estimator(self, **params):
        """A fresh XGBoost regressor with this selector's hyper-parameters (``params`` win)."""
        from xgboost import XGBRegressor

        config = {**{k: getattr(self, k) for k in BOOSTER_PARAMS}, **params}
        return XGBRegressor(**config, random_state=self.seed, n_jobs=self.n_jobs,
                            tree_method="hist", objective="reg:squarederror",
                            num_parallel_tree=self.parallel_trees)

    def _param_grid(self) -> Mapping[str, Sequence[Any]]:
        """The ranking head's search grid. With search off, a calibrated fit still
        validates the one point of its own parameters on the inner folds, so that the
        ranking error (behind intervals and confidence) is measured rather than taken as 0;
        the uncalibrated fits inside calibration search nothing."""
        if not self.search:
            return {"n_estimators": (self.n_estimators,)} if self.calibrate else {}
        return DEFAULT_PARAM_GRID if self.param_grid is None else self.param_grid

    def _staged_param(self) -> str | None:
        """Boosting rounds: one fit with the most rounds answers for fewer."""
        return "n_estimators"

    def _predict_staged(self, estimator, rows, value):
        """Predict with the first ``value`` boosting rounds only."""
        return estimator.predict(rows, iteration_range=(0, int(value)))

    def _make_preprocessor(self):
        """Snap new rows to the nearest training value of each feature."""
        return NearestValueSnapper()

    def _variants(self) -> list[dict[str, Any]]:
        """Departures from the prior to try (none without a prior), most conservative
        first: the global prior, (with ``local_cols``) the hardware's prior, the prior
        of the same task on the other groups, then the departures from each."""
        if not self.prior:
            return [{}]
        kinds = [{}, {"prior": "hardware"} if self.local_cols is not None else None,
                 {"prior": "task"}]
        per_kind = [[{**v, **k} for v in DEPARTURE_VARIANTS] for k in kinds if k is not None]
        return [v[0] for v in per_kind] + [d for v in per_kind for d in v[1:]]

    def _inner_target(self, target, C_train, X_train=None, groups_train=None):
        """With a prior, each inner fold's priors come from that fold's training tasks."""
        return (PriorDeparture(C_train, X_train, self.local_cols, groups_train)
                if self.prior else target)

    def _inner_regime(self, X_train, groups_train):
        """With a prior, which held-out tasks resemble the inner fold's training groups."""
        return GroupSignature.fit(X_train, groups_train).seen if self.prior else None

    def _scores(self, pred, target, variant, X=None):
        """Prior plus the variant's departure; the prediction itself without a prior."""
        return target.scores(pred, variant, X) if self.prior else pred

    # -- fit and predict -------------------------------------------------------------------

    def fit(self, X, C, M=None, groups=None):
        """Fit the level head, search and fit the ranking head; returns self.

        ``groups`` (one label per task, e.g. its hardware) make the inner folds hold
        whole groups out; with fewer than two groups they are folds of tasks.
        """
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        if X.ndim != 2 or C.ndim != 2 or X.shape[0] != C.shape[0]:
            raise ValueError(f"X [n, d] and C [n, m] must have one row per task (got shapes "
                             f"{X.shape} and {C.shape})")
        Mf = self._method_features(M, C.shape[1])
        snapper = NearestValueSnapper().fit(pair_rows(X, Mf))
        self.level_params_ = self._level_params(X, C, Mf, groups)
        level = self._fit_level(X, C, Mf, snapper, self.level_params_)
        ranked, self.imputed_ = C, 0
        if self.relative and self.impute:
            ranked, self.imputed_ = filled_by_level(C, lambda: TwoHeadRegressor(
                level, None, snapper, Mf, roofline_cols=self.roofline_cols).predict_grid(X, Mf))
        Xr = self._without_roofline(X)
        ranker, seen_ranker, prior, regime, local = None, None, None, None, None
        seen = unseen = dict(NO_SEARCH_DEPARTURE)
        self.best_params_: dict[str, Any] = {}
        self.search_scores_: list[dict[str, Any]] = []
        self.inner_folds_ = {"n": 0, "grouped": False}
        self.seen_params_: dict[str, Any] = {}
        self.ranking_error_ = 0.0
        if self.relative:
            if X.shape[0] >= 2 and self._param_grid():
                n = n_groups(groups)
                search = {"n_splits": self.cv, "seed": self.seed, "cache_dir": self.cache_dir,
                          "use_cache": self.cache}
                outcome = self._search(Xr, C, Mf, relative_log_cost, groups=groups, **search)
                self.best_params_ = dict(outcome["params"])
                self.search_scores_ = list(outcome["scores"])
                self.ranking_error_ = float(outcome.get("error_q90", 0.0))
                self.inner_folds_ = {"n": outcome.get("n_inner_folds", 0),
                                     "grouped": bool(outcome.get("grouped", False))}
                seen = unseen = dict(outcome["variant"])
                if self.prior and n >= 1:
                    # Held-out tasks unlike every group of their inner fold's training
                    # choose the departure for unseen groups. With none of them (a single
                    # group, or groups that all resemble another) no fold tells how far
                    # a departure carries to a new group: the prior answers it (departures
                    # that random task folds validate, kept where larger than the ranking
                    # head's 90th-percentile held-out error, were tried there and lost to
                    # Global Best on the reference P's other CPU). A task whose group
                    # matches a training group's facts is interpolation, the regime random
                    # task folds validate: its own ranking head, with the hyper-parameters
                    # they choose, in full (its group's twin was measured: nothing to
                    # shrink towards the prior).
                    by_task = self._search(Xr, C, Mf, relative_log_cost, groups=None, **search)
                    unseen = dict(outcome["regime_variants"]["unseen"] or PRIOR_ONLY)
                    seen = dict(NO_SEARCH_DEPARTURE)
                    self.seen_params_ = dict(by_task["params"])
                    self.ranking_error_ = float(by_task.get("error_q90", 0.0))
                    regime = GroupSignature.fit(X, groups)
            ranker, seen_ranker, prior, local = self._fit_rankers(Xr, C, ranked, Mf, snapper,
                                                                  groups, regime is not None)
        self.departure_ = {"seen": seen, "unseen": unseen} if self.prior else {}
        twin = twin_priors(X, C, regime) if regime is not None else None
        self.estimator_ = TwoHeadRegressor(level, ranker, snapper, Mf, prior, unseen, seen,
                                           regime, seen_ranker, self.roofline_cols, local,
                                           twin)
        self.n_methods_ = C.shape[1]
        if self.calibrate:
            self.estimator_.half_width = {**self._calibrate(X, C, M, groups, seen, unseen),
                                          "ranking": self.ranking_error_}
        return self

    def _fit_rankers(self, Xr, C, ranked, Mf, snapper, groups, with_seen: bool):
        """The ranking heads with the searched hyper-parameters, their priors from the
        measured costs C and their targets from ``ranked`` (C with its gaps filled, see
        :func:`filled_by_level`): (ranker, the seen regime's ranker or None, the global
        prior, the local priors). The priors are what the measurements say; a filled cell
        only completes its task's departures."""
        target = (PriorDeparture(C, Xr, self.local_cols, groups) if self.prior
                  else relative_log_cost)
        ranker = self._fit_pairs(Xr, ranked, Mf, target, snapper, self.best_params_)
        seen_ranker = None
        if with_seen:
            seen_ranker = (ranker if self.seen_params_ == self.best_params_ else
                           self._fit_pairs(Xr, ranked, Mf, target, snapper, self.seen_params_))
        if not self.prior:
            return ranker, seen_ranker, None, None
        return ranker, seen_ranker, target.prior, target.local

    def _calibrate(self, X, C, M, groups, seen, unseen) -> dict[str, float]:
        """Half-widths (log cost) of the nominal-coverage interval, per regime: split
        conformal on held-out errors, for ``unseen`` of held-out groups unlike their
        fold's training groups, for ``seen`` of held-out tasks. Where no held-out group
        is unlike the rest (a single group, or twins) nothing measures a new group's
        error; it gets the spread of the training tasks' log cost about each method's
        mean, the interval of a model that knows nothing of the task."""
        L = log_cost(C)
        ok = np.isfinite(L)
        params = {**self.get_params(deep=False), **self.best_params_, "search": False,
                  "calibrate": False, "cache": False, "level_params": self.level_params_}
        out = {}
        labels = None if groups is None else np.asarray([str(g) for g in groups])
        folds = {"seen": (task_splits(len(X), self.cv, self.seed) if len(X) >= 2 else [], seen),
                 "unseen": (task_splits(len(X), self.cv, self.seed, groups)
                            if n_groups(groups) >= 2 else [], unseen)}
        for regime, (splits, variant) in folds.items():
            errors = []
            for train, val in splits:
                if regime == "unseen":  # only held-out groups unlike the fold's training
                    val = val[~GroupSignature.fit(X[train], labels[train]).seen(X[val])]
                if not np.isfinite(C[train]).any() or not ok[val].any():
                    continue
                inner = MetaInfSelector(**params).fit(X[train], C[train], M)
                inner.estimator_.variant = inner.estimator_.variant_seen = dict(variant)
                pred = inner.predict_log_cost(X[val], M)
                errors.append(np.abs(L[val] - pred)[ok[val]])
            errors = np.concatenate(errors) if errors else np.zeros(0)
            out[regime] = conformal_quantile(errors, INTERVAL_COVERAGE) if errors.size else None
        if out["unseen"] is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a method nothing measured
                spread = np.abs(L - np.nanmean(L, axis=0, keepdims=True))[ok]
            out["unseen"] = conformal_quantile(spread, INTERVAL_COVERAGE) if spread.size else 0.0
        if out["seen"] is None:
            out["seen"] = out["unseen"]
        return {k: float(v) for k, v in out.items()}

    def _without_roofline(self, X: np.ndarray) -> np.ndarray:
        """X with the roofline columns held constant, as the ranking head sees it.

        The roofline's seconds mix the hardware's speed with the workload's size: on
        hardware the head never saw, the same seconds name a different workload, a
        shifted feature that trees follow into the wrong leaves. The level head uses
        them (as its base margin); the ranking head orders methods from the hardware,
        model and workload features, which mean the same on every group.
        """
        if self.roofline_cols is None:
            return X
        X = X.copy()
        X[:, list(self.roofline_cols)] = 0.0
        return X

    def _fit_level(self, X, C, Mf, snapper, params: Mapping[str, Any] | None = None):
        """The level head: log cost of every measured pair, offset by the roofline."""
        rows = pair_rows(X, Mf)
        y = log_cost(C).reshape(-1)
        measured = np.isfinite(y)
        if not measured.any():
            raise ValueError("no measured (task, method) pair to learn from")
        margin = roofline_margin(rows, self.roofline_cols)
        return self._make_estimator(**dict(params or {})).fit(
            snapper.transform(rows)[measured], y[measured],
            base_margin=None if margin is None else margin[measured])

    def _level_params(self, X, C, Mf, groups) -> dict[str, Any]:
        """The level head's hyper-parameters in full: the constructor's, updated by
        ``level_params`` where given, else by the grid point whose level errs least on the
        inner folds (none without a search). The calibration's inner fits get the same."""
        own = {k: getattr(self, k) for k in BOOSTER_PARAMS}
        if self.level_params is not None:
            return {**own, **self.level_params}
        grid = LEVEL_PARAM_GRID if self.level_grid is None else self.level_grid
        if not self.search or not grid or X.shape[0] < 2:
            return own
        return {**own, **self._search_level(X, C, Mf, groups, grid)["params"]}

    def _search_level(self, X, C, Mf, groups, grid) -> dict[str, Any]:
        """Score each level grid point by the median absolute error (log cost) of its level
        head on every measured held-out pair of each inner fold (whole groups held out,
        as for the ranking head), averaged over the folds; the least wins, ties to the
        point listed first. Cached like the ranking head's search."""
        points = grid_points(grid)
        config = {"head": "level",
                  "params": {k: v for k, v in self.get_params(deep=False).items()
                             if k not in NOT_SEARCH_CONFIG + ("level_grid", "param_grid")},
                  "grid": {k: list(grid[k]) for k in grid}, "roofline": self.roofline_cols}
        key = search_key(config, X, C, Mf, groups)
        cache = SearchCache(self.cache_dir) if self.cache else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            return hit
        L = log_cost(C)
        errors = np.full((len(points), 0), np.nan)
        for train, val in task_splits(X.shape[0], self.cv, self.seed, groups):
            y = L[val].reshape(-1)
            ok = np.isfinite(y)
            if not ok.any() or not np.isfinite(L[train]).any():
                continue
            snapper = NearestValueSnapper().fit(pair_rows(X[train], Mf))
            raw = pair_rows(X[val], Mf)
            rows, margin = snapper.transform(raw), roofline_margin(raw, self.roofline_cols)
            fold = [np.median(np.abs(_predict(self._fit_level(X[train], C[train], Mf, snapper,
                                                              point), rows, margin) - y)[ok])
                    for point in points]
            errors = np.column_stack([errors, fold])
        score = errors.mean(axis=1) if errors.shape[1] else np.zeros(len(points))
        best = min(range(len(points)), key=lambda i: (round(float(score[i]), 9), i))
        outcome = {"params": points[best], "scores": [float(v) for v in score],
                   "n_inner_folds": int(errors.shape[1])}
        if cache is not None:
            cache.put(key, outcome)
        return outcome

    def interval_half_width(self, X) -> np.ndarray:
        """Per task, the half-width (log cost) of its nominal 80 % interval."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.interval_half_width(np.asarray(X, dtype=float))

    def ranking_error(self) -> float:
        """The ranking head's 90th-percentile held-out error (log cost; 0 uncalibrated)."""
        check_is_fitted(self, "estimator_")
        return float(self.estimator_.half_width.get("ranking", 0.0))

    def predict_interval(self, X, M=None) -> tuple[np.ndarray, np.ndarray]:
        """The nominal 80 % interval [n_tasks, n_methods] of each predicted cost (low, high)."""
        check_is_fitted(self, "estimator_")
        X = np.asarray(X, dtype=float)
        centre = self.predict_log_cost(X, M)
        half = self.interval_half_width(X)[:, None]
        return np.exp(centre - half), np.exp(centre + half)

    def predict_log_cost(self, X, M=None) -> np.ndarray:
        """Predicted log cost [n_tasks, n_methods]: ranking head plus the task's level."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_grid(np.asarray(X, dtype=float),
                                            self._method_features(M, self.n_methods_))

    def predict_cost(self, X, M=None):
        """Predicted cost of every method for every task (lower is better)."""
        return np.exp(self.predict_log_cost(X, M))

    def predict_rows(self, rows) -> np.ndarray:
        """Predicted log cost of each [task features, method features] row (any pairs)."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(np.asarray(rows, dtype=float)), dtype=float)

    # -- persistence -----------------------------------------------------------------------

    def save_state(self, directory: str | Path) -> list[str]:
        """Write the boosters (XGBoost's own format) and arrays; returns the file names."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.save(directory)

    @classmethod
    def load_state(cls, directory: str | Path, params: Mapping[str, Any],
                   info: Mapping[str, Any] | None = None) -> MetaInfSelector:
        """A fitted selector from :meth:`save_state`'s files and its hyper-parameters."""
        selector = cls(**params)
        selector.estimator_ = TwoHeadRegressor.load(directory)
        selector.n_methods_ = selector.estimator_.method_features.shape[0]
        selector.best_params_ = dict((info or {}).get("best_params", {}))
        selector.level_params_ = dict((info or {}).get("level_params", {}))
        selector.search_scores_ = []
        heads = selector.estimator_
        selector.departure_ = ({"seen": dict(heads.variant_seen), "unseen": dict(heads.variant)}
                               if heads.prior is not None else {})
        selector.inner_folds_ = dict((info or {}).get("inner_folds", {}))
        return selector

    def for_serving(self) -> MetaInfSelector:
        """Predict on one thread: a Select scores a handful of rows, threads only add latency."""
        check_is_fitted(self, "estimator_")
        for head in self.estimator_.heads():
            head.set_params(n_jobs=1)
        return self


class TwoHeadRegressor:
    """The fitted log-cost model of pair rows: ranking head + per-task level, on snapped rows.

    ``predict(rows)`` takes any [task features, method features] rows, like a single
    regressor would; ``ranker`` None means the level head alone.
    """

    def __init__(self, level, ranker, snapper: NearestValueSnapper,
                 method_features: np.ndarray, prior: np.ndarray | None = None,
                 variant: Mapping[str, float] | None = None,
                 variant_seen: Mapping[str, float] | None = None,
                 regime: GroupSignature | None = None, seen_ranker=None,
                 roofline_cols: tuple[int, int] | None = None,
                 local: Mapping[str, LocalPriors] | None = None,
                 twin: LocalPriors | None = None):
        self.level = level
        self.ranker = ranker
        self.snapper = snapper
        self.method_features = np.asarray(method_features, dtype=float)
        self.prior = None if prior is None else np.asarray(prior, dtype=float)
        self.variant = dict(variant or NO_SEARCH_DEPARTURE)
        self.variant_seen = dict(variant_seen or self.variant)
        self.regime = regime
        self.seen_ranker = seen_ranker
        self.roofline_cols = None if roofline_cols is None else tuple(int(c) for c in
                                                                      roofline_cols)
        self.local = dict(local or {})
        self.twin = twin if regime is not None else None
        self.half_width: dict[str, float] = {}
        self._method_index = {r.tobytes(): j for j, r in enumerate(self.method_features)}

    def _ranking(self, snapped: np.ndarray, priors: Mapping[str, np.ndarray],
                 seen: np.ndarray) -> np.ndarray:
        """The ranking head's score of snapped rows: prior + shrunk departure (the seen
        regime's departure where ``seen``), or the prediction as is without a prior.
        ``priors`` hold each row's prior of every kind (see :meth:`_pair_priors`)."""
        pred = np.empty(len(snapped))
        rest = np.ones(len(snapped), dtype=bool)
        if self.seen_ranker is not None and self.seen_ranker is not self.ranker and seen.any():
            pred[seen] = _predict(self.seen_ranker, snapped[seen])
            rest = ~seen
        if rest.any():  # a row's prediction does not depend on the others in its call
            pred[rest] = _predict(self.ranker, snapped[rest])
        if self.prior is None:
            return pred

        def base(variant):
            return priors.get(variant.get("prior", "global"), priors["global"])

        alpha = np.where(seen, self.variant_seen["alpha"], self.variant["alpha"])
        delta = np.where(seen, self.variant_seen["delta"], self.variant["delta"])
        return (np.where(seen, base(self.variant_seen), base(self.variant))
                + alpha * shrink(pred, delta))

    def interval_half_width(self, X: np.ndarray) -> np.ndarray:
        """Per task, the half-width (log cost) of its interval: its regime's (NaN when the
        model was not calibrated)."""
        if not self.half_width:
            return np.full(len(X), np.nan)
        return np.where(self.seen(X), self.half_width["seen"], self.half_width["unseen"])

    def seen(self, X: np.ndarray) -> np.ndarray:
        """Whether each task resembles a training group (all, without a regime)."""
        X = np.asarray(X, dtype=float)
        return self.regime.seen(X) if self.regime is not None else np.ones(len(X), dtype=bool)

    def _pair_priors(self, tasks: np.ndarray, inverse: np.ndarray,
                     methods: np.ndarray) -> dict[str, np.ndarray]:
        """Per pair row (task ``tasks[inverse[i]]``, method features ``methods[i]``), the
        prior of its method by kind: global, and each local kind the model holds (a
        method never trained on: that prior's worst plus the unmeasured penalty)."""
        n = methods.shape[0]
        if self.prior is None:
            return {"global": np.zeros(n)}
        index = np.array([self._method_index.get(r.tobytes(), -1) for r in
                          np.ascontiguousarray(methods, dtype=float)], dtype=int)
        known = index >= 0

        def per_row(table: np.ndarray) -> np.ndarray:
            unknown = table.max(axis=1) + UNMEASURED_PRIOR_PENALTY
            return np.where(known, table[inverse, np.maximum(index, 0)], unknown[inverse])

        out = {"global": per_row(np.tile(self.prior, (max(len(tasks), 1), 1)))}
        for kind, local in self.local.items():
            out[kind] = per_row(local.rows(tasks, self.prior))
        if self.twin is not None:
            out["twin"] = per_row(self.twin.rows(twin_keys(tasks, self.regime),
                                                 np.full(self.prior.shape, np.nan)))
        return out

    def _grid_priors(self, X: np.ndarray, M: np.ndarray) -> dict[str, np.ndarray]:
        """The priors of every (task, method) pair of a grid, task-major."""
        n, m = X.shape[0], M.shape[0]
        return self._pair_priors(X, np.repeat(np.arange(n), m), np.tile(M, (n, 1)))

    @property
    def n_features_in_(self) -> int:
        """Width of a pair row (task features + method features)."""
        return self.snapper.n_features_in_

    def heads(self) -> list:
        """The fitted XGBoost regressors, level head first."""
        heads = [self.level, self.ranker, self.seen_ranker]
        return [h for i, h in enumerate(heads) if h is not None
                and all(h is not other for other in heads[:i])]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Log cost of each pair row; the level of a row's task comes from its task part."""
        rows = np.asarray(rows, dtype=float)
        if self.ranker is None:
            return _predict(self.level, self.snapper.transform(rows),
                            roofline_margin(rows, self.roofline_cols))
        n_task = rows.shape[1] - self.method_features.shape[1]
        tasks, inverse = np.unique(rows[:, :n_task], axis=0, return_inverse=True)
        return self._score_rows(tasks, inverse.reshape(-1), rows)

    def predict_grid(self, X: np.ndarray, M: np.ndarray) -> np.ndarray:
        """Log cost [n_tasks, n_methods] of every pair of X's tasks and M's methods."""
        raw = pair_rows(X, M)
        if self.ranker is None:
            return _predict(self.level, self.snapper.transform(raw),
                            roofline_margin(raw, self.roofline_cols)
                            ).reshape(X.shape[0], M.shape[0])
        owner = np.repeat(np.arange(X.shape[0]), M.shape[0])
        return self._score_rows(X, owner, raw).reshape(X.shape[0], M.shape[0])

    def _score_rows(self, tasks: np.ndarray, owner: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Log cost of the pair rows ``raw`` (row i of task ``tasks[owner[i]]``): the
        ranking head's score plus its task's level, the mean over the training methods
        of level head - ranking head. The rows and the level's reference rows go through
        each head in one call: a Select's few rows cost about one pass over every tree
        per call, whatever their number."""
        ref = pair_rows(tasks, self.method_features)
        n, k = raw.shape[0], self.method_features.shape[0]
        both = np.vstack([raw, ref])
        owner = np.concatenate([owner, np.repeat(np.arange(tasks.shape[0]), k)])
        snapped = self.snapper.transform(both)
        priors = self._pair_priors(tasks, owner, both[:, tasks.shape[1]:])
        score = self._ranking(snapped, priors, self.seen(tasks)[owner])
        if "twin" in priors:
            score = with_twin(score, priors["twin"], owner, tasks.shape[0],
                              np.arange(owner.size) >= n)
        level = _predict(self.level, snapped[n:], roofline_margin(ref, self.roofline_cols))
        gap = (level - score[n:]).reshape(tasks.shape[0], k).mean(axis=1)
        return score[:n] + gap[owner[:n]]

    def save(self, directory: str | Path) -> list[str]:
        """Each head in XGBoost's own format, the arrays in an .npz; returns the file names."""
        d = Path(directory)
        self.level.save_model(str(d / LEVEL_FILE))
        files = [LEVEL_FILE]
        if self.ranker is not None:
            self.ranker.save_model(str(d / RANKER_FILE))
            files.append(RANKER_FILE)
        if self.seen_ranker is not None and self.seen_ranker is not self.ranker:
            self.seen_ranker.save_model(str(d / SEEN_RANKER_FILE))
            files.append(SEEN_RANKER_FILE)
        prior = self.prior if self.prior is not None else np.zeros(0)
        regime = self.regime.to_arrays() if self.regime is not None else {}
        for kind, local in self.local.items():
            regime.update(local.to_arrays(kind))
        if self.twin is not None:
            regime.update(self.twin.to_arrays("twin"))
        np.savez(d / STATE_FILE, snap_values=self.snapper.to_array(),
                 method_features=self.method_features, prior=prior,
                 variant=_variant_array(self.variant),
                 variant_seen=_variant_array(self.variant_seen),
                 half_width=np.array([self.half_width.get(k, np.nan)
                                      for k in ("seen", "unseen", "ranking")]),
                 roofline_cols=np.array(self.roofline_cols or (), dtype=int), **regime)
        return files + [STATE_FILE]

    @classmethod
    def load(cls, directory: str | Path) -> TwoHeadRegressor:
        """Inverse of :meth:`save`."""
        from xgboost import XGBRegressor

        d = Path(directory)
        level = XGBRegressor()
        level.load_model(str(d / LEVEL_FILE))
        ranker = None
        if (d / RANKER_FILE).exists():
            ranker = XGBRegressor()
            ranker.load_model(str(d / RANKER_FILE))
        seen_ranker = ranker
        if (d / SEEN_RANKER_FILE).exists():
            seen_ranker = XGBRegressor()
            seen_ranker.load_model(str(d / SEEN_RANKER_FILE))
        with np.load(d / STATE_FILE) as state:
            snapper = NearestValueSnapper.from_array(state["snap_values"])
            method_features = state["method_features"]
            prior = state["prior"] if "prior" in state and state["prior"].size else None
            variant = _variant_dict(state["variant"])
            variant_seen = _variant_dict(state["variant_seen"])
            regime = GroupSignature.from_arrays(state)
            local = {kind: lp for kind in PRIOR_KINDS[1:]
                     if (lp := LocalPriors.from_arrays(state, kind)) is not None}
            twin = LocalPriors.from_arrays(state, "twin")
            half = state["half_width"]
            roofline = tuple(state["roofline_cols"]) if "roofline_cols" in state else ()
        heads = cls(level, ranker, snapper, method_features, prior, variant, variant_seen,
                    regime, seen_ranker if regime is not None else None, roofline or None,
                    local, twin)
        if np.isfinite(half).all():
            heads.half_width = dict(zip(("seen", "unseen", "ranking"), map(float, half),
                                        strict=True))
        return heads


def _variant_array(variant: Mapping[str, Any]) -> np.ndarray:
    """A departure as saved: [alpha, delta, index of its prior's kind in PRIOR_KINDS]."""
    return np.array([variant["alpha"], variant["delta"],
                     PRIOR_KINDS.index(variant.get("prior", "global"))], dtype=float)


def _variant_dict(values: np.ndarray) -> dict[str, Any]:
    """Inverse of :func:`_variant_array` (a model saved before local priors: global)."""
    out: dict[str, Any] = {"alpha": float(values[0]), "delta": float(values[1])}
    kind = int(round(values[2])) if len(values) > 2 else 0
    if kind:
        out["prior"] = PRIOR_KINDS[kind]
    return out


def _predict(estimator, rows: np.ndarray, margin: np.ndarray | None = None) -> np.ndarray:
    """A fitted XGBoost regressor's predictions of rows (plus a base margin per row, as
    in its fit), straight from its booster."""
    if rows.shape[0] == 0:
        return np.zeros(0)
    out = estimator.get_booster().inplace_predict(
        np.ascontiguousarray(rows), base_margin=None if margin is None else margin)
    return np.asarray(out, dtype=float).reshape(-1)
