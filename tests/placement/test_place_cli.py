"""`metainf place` and `place simulate`: both forms parse, JSON contracts, exit 2 on bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from placement_fleets import ANCHOR, toy_dict

from metainf.cli import build_parser, main

CONTRACT = ("algorithm", "mean_s_per_token", "p50_s_per_token", "p99_s_per_token",
            "throughput_tok_s", "plan_s")


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_dict()))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_both_forms_parse_to_their_own_command():
    parser = build_parser()
    simulate = parser.parse_args(["place", "simulate", "--fleet", "f.yaml", "--json"])
    place = parser.parse_args(["place", "--fleet", "f.yaml", "--model", "bloom-176b"])
    remote = parser.parse_args(["place", "--coordinator", "h:1", "--model", "m", "--json"])
    assert simulate.func.__name__ == "run_simulate" and simulate.json
    assert place.func.__name__ == "run_place" and not place.json
    assert (remote.func.__name__, remote.coordinator, remote.json) == ("run_place", "h:1", True)


def test_simulate_json_has_the_contract_per_algorithm(capsys, toy_file):
    code, out, _ = run(capsys, "place", "simulate", "--fleet", str(toy_file),
                       "--algorithms", "greedy,online", "--json")
    assert code == 0
    result = json.loads(out)
    assert [p["algorithm"] for p in result["plans"]] == ["greedy", "online"]
    for plan in result["plans"]:
        assert all(isinstance(plan[k], float) for k in CONTRACT[1:])
        assert plan["p50_s_per_token"] <= plan["p99_s_per_token"]


def test_simulate_petals_is_a_median_over_the_join_orders_asked(capsys):
    code, out, _ = run(capsys, "place", "simulate", "--fleet", str(ANCHOR), "--algorithms",
                       "petals,greedy", "--join-orders", "4", "--json")
    assert code == 0
    petals, greedy = json.loads(out)["plans"]
    assert petals["join_orders"] == 4 and "join_orders" not in greedy
    low, high = petals["mean_s_per_token_range"]
    assert low <= petals["mean_s_per_token"] <= high
    assert greedy["mean_s_per_token"] < petals["mean_s_per_token"]


def test_place_from_a_fleet_file_prints_a_plan_and_petals_beside_it(capsys):
    code, out, _ = run(capsys, "place", "--fleet", str(ANCHOR), "--model", "bloom-176b",
                       "--join-orders", "5", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["model"], result["blocks"]) == ("bloom-176b", 70)
    assert result["plan"]["algorithm"] == "greedy" and result["petals"]["join_orders"] == 5
    hops = result["plan"]["routes"][0]["hops"]
    assert hops[0]["first_block"] == 1 and hops[-1]["last_block"] == 70
    assert result["plan"]["predicted_s_per_token"] < result["petals"]["predicted_s_per_token"]
    code, out, _ = run(capsys, "place", "--fleet", str(ANCHOR), "--model", "bloom-176b",
                       "--join-orders", "5")
    assert code == 0 and "greedy: predicted 0.52" in out and "petals (median of 5" in out
    moves = result["plan"]["info"]["window_moves"]
    assert f"window search: {moves} move(s)" in out  # and the objective before and after
    assert f"{result['plan']['info']['paper_rule_objective_s']:.2f} s by the paper's rule" in out


def test_place_with_another_catalog_model_keeps_only_how_blocks_are_stored(capsys, tmp_path):
    spec = yaml.safe_load(ANCHOR.read_text(encoding="utf-8"))
    path = tmp_path / "anchor.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, out, _ = run(capsys, "place", "--fleet", str(path), "--model", "llama-3.1-70b",
                       "--join-orders", "2", "--json")
    assert code == 0
    result = json.loads(out)
    # llama-3.1-70b's 80 blocks, not bloom's params_per_block (2.466e9) with its 70 blocks
    assert (result["model"], result["blocks"]) == ("llama-3.1-70b", 80)


@pytest.mark.parametrize("argv, needle", [
    (["place", "--fleet", "{anchor}"], "--model: required"),
    (["place", "--model", "bloom-176b"], "--fleet/--coordinator: give exactly one"),
    (["place", "--fleet", "{anchor}", "--coordinator", "h:1", "--model", "bloom-176b"],
     "--fleet/--coordinator: give exactly one"),
    (["place", "--fleet", "{anchor}", "--model", "bloom-176b", "--algorithm", "fastest"],
     "--algorithm: unknown 'fastest'; known: petals, greedy, online, milp"),
    (["place", "--fleet", "{anchor}", "--model", "bloom-176b", "--arrival-rate", "-0.1"],
     "--arrival-rate: must be >= 0"),
    (["place", "--fleet", "{anchor}", "--model", "bloom-176b", "--sessions", "0"],
     "--sessions: must be > 0"),
    (["place", "--fleet", "{anchor}", "--model", "bloom-176b", "--workers", "a"],
     "--workers: only with --coordinator"),
    (["place", "--fleet", "{anchor}", "--model", "gpt-17"], "model.catalog: unknown model"),
    (["place", "--fleet", "no-such.yaml", "--model", "bloom-176b"], "--fleet: cannot read"),
    (["place", "simulate", "--fleet", "{anchor}", "--algorithms", "x"],
     "--algorithms: unknown 'x'"),
    (["place", "simulate", "--fleet", "{anchor}", "--join-orders", "0"],
     "--join-orders: must be > 0"),
    (["place", "simulate", "--fleet", "{bad}"], "load.arrival_rate: input should be greater"),
    (["place", "simulate", "--fleet", "{short}"], "rtt.client_server_ms: expected 2 rows"),
    (["place", "simulate", "--fleet", "{small}"], "servers.memory_gb: the fleet's memory holds"),
])
def test_bad_input_exits_2_with_one_line_naming_the_field(capsys, tmp_path, argv, needle):
    files = {"anchor": ANCHOR}
    for name, edit in (("bad", lambda d: d["load"].update(arrival_rate=-0.1)),
                       ("short", lambda d: d["rtt"].update(client_server_ms=[[1, 2, 3, 4]])),
                       ("small", lambda d: [s.update(memory_gb=0.01) for s in d["servers"]])):
        spec = toy_dict()
        edit(spec)
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(spec))
    code, out, err = run(capsys, *(a.format(**files) for a in argv))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
