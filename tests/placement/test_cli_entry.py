"""`place_simulate` and `place`: the JSON contract, errors as rows, and the anchor's figures."""

from __future__ import annotations

import json

import pytest
import yaml
from placement_fleets import ANCHOR, toy_dict

from metainf.placement.cli_entry import format_table, place, place_simulate, simulate_fleet
from metainf.placement.errors import FleetError, PlacementError
from metainf.placement.fleet import fleet_from_dict, load_fleet

CONTRACT = ("algorithm", "mean_s_per_token", "p50_s_per_token", "p99_s_per_token",
            "throughput_tok_s", "plan_s")


def test_every_plan_entry_carries_the_contract_and_is_json(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_dict()))
    result = place_simulate(path, ["greedy", "online", "milp", "petals"])
    out = json.loads(json.dumps(result))
    assert [p["algorithm"] for p in out["plans"]] == ["greedy", "online", "milp", "petals"]
    for entry in out["plans"][:3]:
        assert entry["status"] == "ok"
        assert all(isinstance(entry[k], (int, float)) or k == "algorithm" for k in CONTRACT)
        assert entry["p50_s_per_token"] <= entry["p99_s_per_token"]
        assert entry["served"] == 40
    milp = out["plans"][2]
    assert milp["objective_s"] <= out["plans"][0]["objective_s"] + 1e-6
    assert "greedy_gap" in milp["info"]
    # The toy is too small for PETALS' fixed reservations: a row with the error, not a crash.
    assert out["plans"][3]["status"] == "failed"
    assert out["plans"][3]["error"].startswith("servers.memory_gb:")
    assert "greedy" in format_table(out)


def test_unknown_algorithm_fails_before_any_work(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_dict()))
    with pytest.raises(PlacementError, match="unknown 'fastest'"):
        place_simulate(path, ["greedy", "fastest"])


def test_bad_fleet_file_raises_fleet_error_naming_the_field(tmp_path):
    spec = toy_dict()
    spec["load"]["arrival_rate"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(FleetError) as err:
        place_simulate(path)
    assert err.value.field == "load.arrival_rate"


def test_place_gives_ranges_routes_and_petals_side_by_side():
    out = place(load_fleet(ANCHOR), "greedy", join_orders=5)
    plan, petals = out["plan"], out["petals"]
    assert {r["server"] for r in plan["ranges"]} <= set(load_fleet(ANCHOR).server_names)
    hops = plan["routes"][0]["hops"]
    assert hops[0]["first_block"] == 1 and hops[-1]["last_block"] == 70
    assert all(a["last_block"] + 1 == b["first_block"] for a, b in zip(hops, hops[1:]))
    assert petals["join_orders"] == 5 and petals["predicted_s_per_token"] > 0
    json.dumps(out)


@pytest.fixture(scope="module")
def anchor():
    """The anchor simulated with PETALS (100 join orders) and greedy."""
    return simulate_fleet(fleet_from_dict(yaml.safe_load(ANCHOR.read_text(encoding="utf-8"))),
                          ["petals", "greedy"])


def test_anchor_greedy_cuts_petals_mean_time_per_token(anchor):
    petals, greedy = anchor["plans"]
    assert petals["join_orders"] == 100
    cut = anchor["cuts"]["greedy_vs_petals"]
    assert cut["mean_s_per_token"] == pytest.approx(
        1 - greedy["mean_s_per_token"] / petals["mean_s_per_token"])
    # Measured with the inputs (seed 0): 50 % end to end, 24 % in service time.
    assert cut["mean_s_per_token"] >= 0.45
    assert cut["mean_service_s_per_token"] >= 0.20


@pytest.mark.xfail(strict=True, reason="the issue asks >= 60 %; with its fixed inputs this "
                   "implementation cuts 50 % (docs/placement.md says why)")
def test_anchor_greedy_cut_reaches_the_papers_sixty_percent(anchor):
    assert anchor["cuts"]["greedy_vs_petals"]["mean_s_per_token"] >= 0.60


def test_a_cut_is_worded_by_its_sign():
    result = {"fleet": "f", "model": "m", "blocks": 2, "servers": 2, "clients": 1, "plans": [],
              "cuts": {"greedy_vs_petals": {"mean_s_per_token": 0.25,
                                            "mean_service_s_per_token": -0.1}}}
    line = format_table(result).splitlines()[-1]
    assert line == ("greedy_vs_petals: mean time per token cut by 25.0%, service time alone "
                    "10.0% slower than PETALS")
