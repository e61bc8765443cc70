"""MetaInf's prior and its grouped inner validation; the noise-aware truth; available picks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metainf.selector.base import one_se_variant
from metainf.selector.baselines.global_best import GlobalBestSelector
from metainf.selector.evaluation.metrics import summarise, task_outcomes
from metainf.selector.meta_learner import (
    PRIOR_ONLY,
    LocalPriors,
    MetaInfSelector,
    PriorDeparture,
    prior_log_scores,
)
from metainf.selector.search import task_splits
from metainf.selector.table import FARM_MAPPING, PerfTable, noise_cobest

GRID = {"max_depth": [3], "min_child_weight": [1.0], "n_estimators": [60]}


def group_table(n_groups=12, per_group=10, seed=0):
    """Each group (a hardware, say) has its own winner, drawn at random: m0 in about 70 %.

    A group is one random value of feature 0 (its signature); feature 1 varies per task
    and means nothing. Within a group every task has the same winner, so folds of tasks
    learn it from the group's other tasks; a held-out group's winner is a coin toss that
    only the prior (m0 most often) gets right more often than not.
    """
    rng = np.random.default_rng(seed)
    sig = rng.normal(size=n_groups)
    first = rng.random(n_groups) < 0.7
    first[:2] = [True, False]
    groups = np.repeat([f"g{g}" for g in range(n_groups)], per_group)
    X = np.column_stack([np.repeat(sig, per_group), rng.normal(size=n_groups * per_group)])
    wins = np.repeat(first, per_group)
    C = np.where(wins[:, None], [1.0, 1.2], [1.2, 1.0]) * rng.uniform(0.99, 1.01,
                                                                      (len(X), 2))
    return X, C, groups


def test_grouped_splits_hold_whole_groups_out():
    groups = np.repeat(["a", "b", "c", "d"], 3)
    splits = task_splits(12, 2, seed=0, groups=groups)
    assert len(splits) == 2
    for train, val in splits:
        assert not set(groups[train]) & set(groups[val])
    assert sorted(np.concatenate([v for _, v in splits]).tolist()) == list(range(12))
    loo = task_splits(12, 5, seed=0, groups=groups)  # 4 groups <= 5 folds: one group each
    assert [len(set(groups[v])) for _, v in loo] == [1, 1, 1, 1]


def test_random_folds_trust_a_departure_that_grouped_folds_reject(tmp_path):
    X, C, groups = group_table()
    by_task = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(X, C)
    by_group = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(X, C,
                                                                             groups=groups)
    # folds of tasks see each group's winner in training: departing from the prior pays
    assert by_task.departure_["seen"]["alpha"] > 0
    # folds of groups do not: for an unseen group the prior stays
    assert by_group.inner_folds_["grouped"]
    assert by_group.departure_["unseen"]["alpha"] == 0.0


def test_the_prior_answers_an_unseen_group_as_global_best_does(tmp_path):
    X, C, groups = group_table()
    Xn, Cn, _ = group_table(n_groups=6, seed=7)  # new groups, new signatures
    Xn[:, 0] += 10.0
    sel = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(X, C, groups=groups)
    gb = GlobalBestSelector().fit(X, C)
    assert not sel.estimator_.seen(Xn).any()
    np.testing.assert_array_equal(np.argmin(sel.predict_cost(Xn), axis=1),
                                  np.argmin(gb.predict_cost(Xn), axis=1))
    # the prior is Global Best's score, in logs
    np.testing.assert_allclose(np.exp(prior_log_scores(C)), gb.scores_)
    # a task of a training group is answered by the learned model, group winner and all
    seen = sel.estimator_.seen(X)
    assert seen.all()
    hits = (np.argmin(sel.predict_cost(X), axis=1) == np.argmin(C, axis=1)).mean()
    assert hits > 0.9


def test_a_departure_must_beat_the_prior_by_more_than_the_inner_folds_noise():
    rng = np.random.default_rng(0)
    prior = 1.0 + rng.uniform(0.0, 0.2, 60)
    # a lead of 0.2 % on tasks whose regrets move by 10 %: noise, the prior stays
    noise = rng.normal(0.0, 0.1, 60)
    noisy = np.column_stack([prior, prior - 0.002 + noise - noise.mean()])
    assert noisy[:, 1].mean() < noisy[:, 0].mean()
    assert one_se_variant(noisy) == 0
    # a lead of 10 % on every task: the departure
    clear = np.column_stack([prior, prior - 0.1 + rng.normal(0.0, 0.01, 60)])
    assert one_se_variant(clear) == 1
    # the same lead carried by one inner fold of three: tasks held out together err
    # together, so the spread across folds decides, and the prior stays
    folds = np.repeat([0, 1, 2], 20)
    one_fold = np.column_stack([prior, prior - np.where(folds == 0, 0.3, 0.0)])
    assert one_se_variant(one_fold) == 1
    assert one_se_variant(one_fold, folds) == 0


def test_a_single_training_group_keeps_the_prior_for_a_new_group(tmp_path):
    # one hardware: m1 wins where feature 1 is high, m0 (the prior) elsewhere; folds of
    # tasks validate that departure, but no fold tells whether it carries to new hardware
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=80)
    X = np.column_stack([np.zeros(80), x1])
    C = np.where((x1 > 0.6)[:, None], [1.2, 1.0], [1.0, 1.2]) * rng.uniform(0.99, 1.01,
                                                                           (80, 2))
    sel = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(
        X, C, groups=np.repeat(["cpu-a"], 80))
    assert sel.departure_["unseen"] == PRIOR_ONLY
    assert sel.departure_["seen"]["alpha"] > 0
    new = X + [5.0, 0.0]
    assert not sel.estimator_.seen(new).any()
    gb = GlobalBestSelector().fit(X, C)
    np.testing.assert_array_equal(np.argmin(sel.predict_cost(new), axis=1),
                                  np.argmin(gb.predict_cost(new), axis=1))
    # its own hardware is answered by the departure
    hits = (np.argmin(sel.predict_cost(X), axis=1) == np.argmin(C, axis=1)).mean()
    assert hits > 0.9


def hardware_table(n_models=8, per_model=12, seed=0):
    """Two hardware (feature 0: -1 or +1) under many models (feature 1, the group): on
    hardware a m0 wins every task, on hardware b m1 does; a has twice b's tasks, so the
    global prior says m0 everywhere."""
    rng = np.random.default_rng(seed)
    hw = np.tile(np.r_[np.full(2 * per_model // 3, -1.0), np.full(per_model // 3, 1.0)],
                 n_models)
    model = np.repeat(rng.normal(size=n_models), per_model)
    X = np.column_stack([hw, model, rng.normal(size=hw.size)])
    C = np.where((hw > 0)[:, None], [1.2, 1.0], [1.0, 1.2]) * rng.uniform(
        0.99, 1.01, (hw.size, 2))
    return X, C, np.repeat([f"model{i}" for i in range(n_models)], per_model)


def test_each_hardware_gets_its_own_prior_where_the_inner_folds_prefer_it(tmp_path):
    X, C, groups = hardware_table()
    Xn, Cn, _ = hardware_table(n_models=3, seed=9)  # new models on the same two hardware
    Xn[:, 1] += 10.0
    plain = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path), prior=True).fit(
        X, C, groups=groups)
    local = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path),
                            local_cols=(0,)).fit(X, C, groups=groups)
    assert local.departure_["unseen"].get("prior") == "hardware"
    assert not local.estimator_.seen(Xn).any()
    truth = np.argmin(Cn, axis=1)
    assert (np.argmin(local.predict_cost(Xn), axis=1) == truth).all()
    # without hardware priors, the global prior answers m0 on hardware b as well
    assert plain.departure_["unseen"].get("prior") is None
    # hardware never trained on falls back to the global prior
    odd = Xn.copy()
    odd[:, 0] = 3.0
    gb = GlobalBestSelector().fit(X, C)
    np.testing.assert_array_equal(np.argmin(local.predict_cost(odd), axis=1),
                                  np.argmin(gb.predict_cost(odd), axis=1))
    # a saved model keeps its hardware priors and which prior each regime starts from
    (tmp_path / "m").mkdir()
    local.save_state(tmp_path / "m")
    loaded = MetaInfSelector.load_state(tmp_path / "m", local.get_params())
    assert loaded.departure_ == local.departure_
    np.testing.assert_allclose(loaded.predict_cost(Xn), local.predict_cost(Xn), rtol=1e-6)


def same_task_table(n_hardware=8, n_tasks=30, seed=0):
    """Tasks (features 1-3, a random code each) run on every hardware (feature 0, the
    group): each task has its own winner among 3 methods, the same on every hardware."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n_tasks, 3))
    winner = rng.integers(0, 3, n_tasks)
    hw = 2.0 * np.arange(n_hardware)  # far apart: a held-out hardware is unseen
    X = np.column_stack([np.repeat(hw, n_tasks), np.tile(codes, (n_hardware, 1))])
    C = np.full((len(X), 3), 1.3) * rng.uniform(0.99, 1.01, (len(X), 3))
    C[np.arange(len(X)), np.tile(winner, n_hardware)] = 1.0
    return X, C, np.repeat([f"hw{i}" for i in range(n_hardware)], n_tasks)


def test_a_task_on_new_hardware_starts_from_the_same_task_on_the_others(tmp_path):
    X, C, groups = same_task_table()
    train, test = groups != "hw7", groups == "hw7"
    target = PriorDeparture(C[train], X[train], groups=groups[train])
    # keyed by every column but the group's own (feature 0)
    assert target.local["task"].columns.tolist() == [1, 2, 3]
    task_prior = target.base(X[test], {"prior": "task"})
    assert (np.argmin(task_prior, axis=1) == np.argmin(C[test], axis=1)).all()
    # the grouped inner folds prefer it to the global prior, and it answers new hardware
    sel = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(
        X[train], C[train], groups=groups[train])
    assert sel.departure_["unseen"].get("prior") == "task"
    assert not sel.estimator_.seen(X[test]).any()
    hits = np.argmin(sel.predict_cost(X[test]), axis=1) == np.argmin(C[test], axis=1)
    assert hits.all()
    # a single training group has no other group to take a task's prior from
    assert "task" not in PriorDeparture(C[:30], X[:30], groups=groups[:30]).local


def test_a_local_prior_is_found_by_exact_or_nearly_equal_keys_and_else_falls_back():
    # two keys (feature 1), each with 4 tasks whose winner differs; feature 0 is not a key
    X = np.column_stack([np.arange(8.0), np.repeat([0.1, 0.7], 4)])
    C = np.where(np.repeat([True, False], 4)[:, None], [1.0, 2.0], [2.0, 1.0])
    local = LocalPriors.fit(X, C, [1])
    fallback = np.array([5.0, 6.0])
    asked = np.array([[9.0, 0.7], [3.0, 0.1 + 1e-12], [0.0, 0.4], [1.0, 0.1]])
    rows = local.rows(asked, fallback)
    assert np.argmin(rows, axis=1)[[0, 3]].tolist() == [1, 0]
    assert rows[1].tolist() == rows[3].tolist() != fallback.tolist()
    assert rows[2].tolist() == fallback.tolist()
    assert np.array_equal(local.rows(asked[::-1], fallback), rows[::-1])


def test_a_task_on_a_twin_of_a_training_hardware_takes_the_twins_measured_ranking(tmp_path):
    # five hardware with their own facts (column 0) and a description column (1); the
    # same 20 tasks (column 2) on each, whose winners are drawn at random: nothing in
    # the features predicts them. "g1-capped" has g1's facts, a description a word
    # away, and g1's measurements.
    rng = np.random.default_rng(3)
    tasks = rng.normal(size=20)
    X, C, groups = [], [], []
    for g in range(5):
        X.append(np.column_stack([np.full(20, float(g)), np.zeros(20), tasks]))
        C.append(rng.uniform(1.0, 1.3, (20, 3)))
        groups += [f"g{g}"] * 20
    X, C, groups = np.vstack(X), np.vstack(C), np.array(groups)
    C[np.flatnonzero(groups == "g1")[:5], 2] = np.nan  # g1 did not run method 2 there
    twin_X = np.column_stack([np.full(20, 1.0), np.full(20, 0.1), tasks])
    twin_C = C[groups == "g1"]
    sel = MetaInfSelector(param_grid=GRID, cache_dir=str(tmp_path)).fit(X, C, groups=groups)
    assert sel.estimator_.seen(twin_X).all()
    cost = sel.predict_cost(twin_X)
    picks = np.argmin(cost, axis=1)
    assert (picks[5:] == np.argmin(twin_C[5:], axis=1)).all()
    # where the twin measured two methods of three, their measured order stands and the
    # model places the third
    assert np.isfinite(cost).all()
    assert ((cost[:5, 0] < cost[:5, 1]) == (twin_C[:5, 0] < twin_C[:5, 1])).all()
    # a pair's prediction does not hang on which other pairs were asked with it
    one = sel.estimator_.predict(np.column_stack([twin_X[:1], sel.estimator_.method_features[
        [1]]]))
    assert np.isclose(np.exp(one[0]), cost[0, 1])
    # kept through save and load
    sel.save_state(tmp_path)
    again = MetaInfSelector.load_state(tmp_path, sel.get_params())
    assert (np.argmin(again.predict_cost(twin_X), axis=1) == picks).all()
    # a hardware unlike every training one has no twin to copy
    far = twin_X.copy()
    far[:, 0] = 9.0
    assert not sel.estimator_.seen(far).any()


def test_a_method_no_training_task_measured_is_chosen_last():
    C = np.array([[1.0, 2.0, np.nan], [1.5, 1.0, np.nan]])
    prior = prior_log_scores(C)
    assert prior[2] > prior[:2].max()


def test_repetitions_that_cannot_tell_methods_apart_make_them_co_best():
    rows = []
    rng = np.random.default_rng(0)
    for _rep in range(5):
        rows += [  # task A: m0 and m1 overlap within noise, m2 is 30 % slower
            {"model": "a", "hardware": "h", "workload": "w", "batch_size": 1, "method": "m0",
             "runtime_s": 1.00 + 0.05 * rng.standard_normal()},
            {"model": "a", "hardware": "h", "workload": "w", "batch_size": 1, "method": "m1",
             "runtime_s": 1.01 + 0.05 * rng.standard_normal()},
            {"model": "a", "hardware": "h", "workload": "w", "batch_size": 1, "method": "m2",
             "runtime_s": 1.30 + 0.01 * rng.standard_normal()},
            # task B: tight repetitions, m1 is 5 % slower: strictly worse
            {"model": "b", "hardware": "h", "workload": "w", "batch_size": 1, "method": "m0",
             "runtime_s": 1.00 + 0.001 * rng.standard_normal()},
            {"model": "b", "hardware": "h", "workload": "w", "batch_size": 1, "method": "m1",
             "runtime_s": 1.05 + 0.001 * rng.standard_normal()},
        ]
    table = PerfTable.from_frame(pd.DataFrame(rows), FARM_MAPPING)
    a, b = (table.tasks["model"] == "a").to_numpy(), (table.tasks["model"] == "b").to_numpy()
    m = {name: i for i, name in enumerate(table.methods)}
    assert table.cobest[a, m["m0"]] and table.cobest[a, m["m1"]]
    assert not table.cobest[a, m["m2"]]
    assert table.cobest[b, m["m0"]] and not table.cobest[b, m["m1"]]
    assert not table.cobest[b, m["m2"]]  # not measured
    # one repetition each: only the best (no noise known)
    single = noise_cobest(np.array([0, 0]), np.array([0, 1]), np.array([1.0, 1.05]), (1, 2))
    assert single.tolist() == [[True, False]]


def test_noise_aware_and_available_figures_beside_the_strict_ones():
    nan = np.nan
    C = np.array([[1.0, 1.05, 2.0],    # m1 is 5 % slower: a strict miss, but co-best
                  [1.0, nan, 3.0]])    # m1 was not measured here, but is on this hardware
    cobest = np.array([[True, True, False], [True, False, False]])
    available = np.array([[True, True, True], [True, True, True]])
    pred = np.array([[2.0, 1.0, 3.0],  # picks m1
                     [2.0, 1.0, 3.0]])  # m1: the best available, infeasible for the task
    out = task_outcomes(C, pred, ["m0", "m1", "m2"], cobest=cobest, available=available)
    s = summarise(out)
    assert s["accuracy"] == 0.5  # strict: m1 (a miss by 5 %), then m0 among m0, m2 (a hit)
    assert s["regret"] == (1.05 + 1.0) / 2
    assert s["accuracy_noise"] == 1.0 and s["regret_noise"] == 1.0
    assert s["infeasible_pick_rate"] == 0.5
    assert s["accuracy_available"] == 0.0
    assert s["regret_available"] == (1.05 + 3.0) / 2  # an infeasible pick: the worst cost
