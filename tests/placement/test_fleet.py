"""The fleet file: the anchor's numbers, and bad input refused with the field named."""

from __future__ import annotations

import pytest
from placement_fleets import ANCHOR

from metainf.placement.errors import FleetError
from metainf.placement.fleet import fleet_from_dict, load_fleet
from metainf.placement.shapes import load_shape


def test_anchor_resolves_to_the_issue_numbers():
    fleet = load_fleet(ANCHOR)
    assert fleet.num_blocks == 70 and fleet.num_servers == 9 and fleet.num_clients == 1
    assert fleet.block_bytes == pytest.approx(2.466e9 * 4.25 / 8 * 1.01)
    assert fleet.cache_bytes == pytest.approx(2 * 14336 * 100 * 2)
    mig = [j for j, n in enumerate(fleet.server_names) if n.startswith("mig")]
    a100 = [j for j, n in enumerate(fleet.server_names) if n.startswith("a100")]
    assert len(mig) == 7 and len(a100) == 2
    rtt = fleet.rtt_cs[0] * 1000
    assert ((rtt[mig] >= 25) & (rtt[mig] <= 30)).all()
    assert ((rtt[a100] >= 125) & (rtt[a100] <= 225)).all()
    across = fleet.rtt_ss[mig][:, a100] * 1000
    assert ((across >= 100) & (across <= 200)).all()
    assert fleet.tau_s[a100] == pytest.approx(0.015 / 7)
    assert fleet.petals_throughput[mig] == pytest.approx(770.96 / 7)


def test_rtts_are_drawn_from_the_seed(toy):
    a, b = fleet_from_dict(toy), fleet_from_dict(toy)
    assert (a.rtt_cs == b.rtt_cs).all() and (a.rtt_ss == b.rtt_ss).all()
    toy["seed"] = 4
    assert not (fleet_from_dict(toy).rtt_cs == a.rtt_cs).all()


def test_bloom_block_has_twelve_d_squared_parameters():
    shape = load_shape("bloom-176b")
    assert shape.num_blocks == 70 and shape.d_model == 14336
    assert shape.params_per_block == 12 * 14336**2


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["servers"][1].update(memroy_gb=1), "servers.1.memroy_gb"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d["load"].update(arrival_rate=-0.1), "load.arrival_rate"),
    (lambda d: d["clients"][0].update(arrival_rate=-1), "clients.0.arrival_rate"),
    (lambda d: d["rtt"].update(client_server_ms=[[1, 2, 3, 4]]), "rtt.client_server_ms"),
    (lambda d: d["rtt"].update(server_server_ms=[[0, 1], [1, 0]]), "rtt.server_server_ms"),
    (lambda d: [s.update(memory_gb=0.01) for s in d["servers"]], "servers.memory_gb"),
    (lambda d: d["servers"][2].pop("tau_ms"), "servers.2.tau_ms"),
    (lambda d: d["rtt"]["regions"].pop(), "rtt.regions"),
    (lambda d: d["model"].pop("num_blocks"), "model.num_blocks"),
    (lambda d: d["model"].update(catalog="no-such-model"), "model.catalog"),
    (lambda d: d.pop("load"), "load"),
])
def test_bad_input_names_the_field(toy, edit, field):
    edit(toy)
    with pytest.raises(FleetError) as err:
        fleet_from_dict(toy)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")
    assert "\n" not in str(err.value)


def test_a_model_too_big_for_the_fleet_says_how_much_fits(toy):
    toy["model"]["num_blocks"] = 40
    with pytest.raises(FleetError, match=r"holds \d+ of toy's 40 blocks"):
        fleet_from_dict(toy)


def test_unreadable_file_is_a_fleet_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(FleetError, match="not valid YAML"):
        load_fleet(bad)
    with pytest.raises(FleetError, match="cannot read"):
        load_fleet(tmp_path / "missing.yaml")


def test_count_expands_servers_with_numbered_names(anchor_dict):
    fleet = fleet_from_dict(anchor_dict)
    assert fleet.server_names[:2] == ("mig-1", "mig-2")
    assert fleet.server_names[-1] == "a100-2"


def test_tau_is_estimated_from_hardware_and_marked(toy):
    toy["servers"][0].update(hardware="A100 80GB")
    toy["servers"][3].pop("tau_ms")
    toy["servers"][3].update(bandwidth_tbs=0.3, tflops=65)
    fleet = fleet_from_dict(toy)
    assert list(fleet.tau_estimated) == [False, False, False, True]
    ideal = fleet.block_bytes / 2.039e12
    efficiency = ideal / 0.002  # calibrated on the timed A100
    assert fleet.tau_s[3] == pytest.approx(fleet.block_bytes / 0.3e12 / efficiency)


def test_unknown_hardware_without_tau_names_the_field(toy):
    toy["servers"][1].pop("tau_ms")
    toy["servers"][1].update(hardware="Quantum Toaster 9000")
    with pytest.raises(FleetError) as err:
        fleet_from_dict(toy)
    assert err.value.field == "servers.1.hardware"


def test_sessions_given_per_client_must_sum_to_load(toy):
    toy["clients"][0]["sessions"] = 1
    toy["clients"][1]["sessions"] = 2
    with pytest.raises(FleetError) as err:
        fleet_from_dict(toy)
    assert err.value.field == "clients.sessions"
