"""Grid files: validation errors name the field; expansion covers the whole grid."""

from __future__ import annotations

import json

import pytest

from metainf.grid import GridError, expand, load_grid_file, validate_grid


def grid(**over):
    base = {
        "models": ["llama-tiny"],
        "methods": ["none", "cb", "pc"],
        "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 8,
                       "batch_size": [2, 4], "max_output_tokens": 4}],
        "repetitions": 2,
    }
    base.update(over)
    return base


def test_expansion_is_the_full_cross_product():
    g = validate_grid(grid(models=["llama-tiny", "qwen2-tiny"]))
    cells = expand(g)
    assert len(cells) == 2 * 3 * 1 * 2
    assert {(c.model, c.method.name, c.batch_size) for c in cells} == {
        (m, meth, b) for m in ("llama-tiny", "qwen2-tiny") for meth in ("none", "cb", "pc")
        for b in (2, 4)}


def test_paper8_and_none_cb_share_an_engine():
    cells = expand(validate_grid(grid(methods="paper8")))
    assert len({c.method.name for c in cells}) == 8
    keys = {c.method.name: c.engine_key for c in cells}
    assert keys["none"] == keys["cb"]
    assert keys["pc"] == keys["cb+pc"]
    assert len(set(keys.values())) == 4


def test_cell_ids_are_stable_and_distinct():
    cells = expand(validate_grid(grid()))
    ids = [c.cell_id("c1", "h1") for c in cells]
    assert len(set(ids)) == len(ids)
    assert ids == [c.cell_id("c1", "h1") for c in expand(validate_grid(grid()))]
    assert cells[0].cell_id("c1", "h2") != ids[0]


@pytest.mark.parametrize("bad, field", [
    (grid(methods=["none", "turbo"]), "turbo"),
    (grid(workloads=[{"dataset": "synthetic-sharegpt", "num_prompts": 8, "batch_size": -1}]),
     "batch_size"),
    (grid(colour="blue"), "colour"),
    (grid(models=["no-such-model"]), "no-such-model"),
    (grid(workloads=[{"dataset": "sharegpt", "num_prompts": 8, "batch_size": 2}]), "path"),
    (grid(workloads=[{"dataset": "synthetic-sharegpt", "num_prompts": 8, "batch_size": 2,
                      "speed": 3}]), "speed"),
    (grid(repetitions=0), "repetitions"),
])
def test_bad_grids_name_the_problem(bad, field):
    with pytest.raises(GridError, match=field):
        validate_grid(bad)


def test_missing_dataset_file_is_named(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid(workloads=[{
        "dataset": "sharegpt", "path": "nowhere.json", "num_prompts": 4, "batch_size": 2}])))
    with pytest.raises(GridError, match="nowhere.json"):
        load_grid_file(path)


def test_file_datasets_are_sampled_into_the_grid(tmp_path):
    from metainf.workloads import sample_path

    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(grid(workloads=[{
        "dataset": "sharegpt", "path": str(sample_path("sharegpt_sample.json")),
        "num_prompts": 5, "batch_size": 2}])))
    g = load_grid_file(path)
    spec = g.workloads[0].spec()
    assert spec.records is not None and len(spec.records) == 5
    assert all(r.output_tokens >= 1 for r in spec.records)


def test_missing_grid_file():
    with pytest.raises(GridError, match="not found"):
        load_grid_file("/nonexistent/grid.yaml")


def test_a_planning_only_catalog_model_is_refused_naming_models():
    with pytest.raises(GridError, match=r"^models: 'bloom-176b' is in the catalog for "
                                        r"place-and-route planning only"):
        validate_grid(grid(models=["llama-tiny", "bloom-176b"]))


def test_the_full_grid_stays_the_default_and_active_keys_are_read():
    g = validate_grid(grid())
    assert (g.strategy, g.max_cells, g.confidence) == ("full", None, 0.9)
    g = validate_grid(grid(strategy="active", max_cells=5, confidence=0.75))
    assert (g.strategy, g.max_cells, g.confidence) == ("active", 5, 0.75)
    assert len(expand(g)) == 6  # the grid's cells all exist; the campaign picks among them


@pytest.mark.parametrize("bad,field", [
    ({"strategy": "smart"}, "strategy"),
    ({"strategy": "active", "max_cells": 0}, "max_cells"),
    ({"strategy": "active", "max_cells": "ten"}, "max_cells"),
    ({"strategy": "active", "confidence": 1.5}, "confidence"),
    ({"strategy": "active", "confidence": -0.1}, "confidence"),
    ({"max_cells": 3}, "max_cells"),        # only an active campaign stops early
    ({"strategy": "active", "max_cell": 3}, "max_cell"),
])
def test_bad_active_keys_name_the_key(bad, field):
    with pytest.raises(GridError) as err:
        validate_grid(grid(**bad))
    assert field in str(err.value)
