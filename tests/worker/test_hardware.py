"""The hardware probe and hardware classes (a hand-written fake NVML stands in for GPUs)."""

from __future__ import annotations

import os
import sys

import pytest

from metainf.hardware import hardware_class
from metainf.worker.hardware import measure_memory_bandwidth, parse_cpu_list, probe

PROFILE_FIELDS = {"kind", "accelerator", "accelerator_count", "accelerator_memory_gb",
                  "compute_capability", "driver_version", "power_limit_w", "cpu_model",
                  "cpu_cores", "ram_gb", "isa_flags", "cpu_clock_ghz", "memory_bandwidth_gbs"}


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNVML:
    """A hand-written stand-in for the pynvml module: a few GPUs, or a failure at init."""

    NVMLError = FakeNVMLError

    def __init__(self, names=(), fail_init=False, memory_bytes=81559 * 1024**2):
        self.names = list(names)
        self.fail_init = fail_init
        self.memory_bytes = memory_bytes
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i >= len(self.names):
            raise FakeNVMLError("Invalid Argument")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return int(uuid.rsplit("-", 1)[1])

    def nvmlDeviceGetName(self, h):
        return self.names[h].encode()  # older pynvml returns bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("Memory", (), {"total": self.memory_bytes})()

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return (9, 0)

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700000


def test_probe_on_this_machine_is_a_cpu_profile():
    profile = probe()
    assert set(profile) == PROFILE_FIELDS
    if profile["kind"] == "gpu":
        pytest.skip("this machine has a GPU")
    assert profile["accelerator"] == "" and profile["accelerator_count"] == 0
    assert profile["cpu_cores"] == len(os.sched_getaffinity(0))
    assert profile["cpu_model"]
    assert profile["ram_gb"] > 0
    assert profile["isa_flags"] == sorted(profile["isa_flags"])
    assert "flags" not in profile["isa_flags"]


def test_probe_honours_cpus_and_shares_ram_by_cores():
    full = probe()
    one = probe([0])
    assert one["cpu_cores"] == 1
    machine = max(os.cpu_count() or 1, len(os.sched_getaffinity(0)))
    if full["cpu_cores"] == machine:  # no container memory limit games on this box
        assert one["ram_gb"] == pytest.approx(full["ram_gb"] / full["cpu_cores"], abs=0.02)
    assert one["ram_gb"] < full["ram_gb"] or full["cpu_cores"] == 1


def test_missing_nvml_is_the_cpu_case(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(fail_init=True))
    assert probe()["kind"] == "cpu"
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(names=[]))
    assert probe()["kind"] == "cpu"


def test_gpus_through_nvml(monkeypatch):
    fake = FakeNVML(names=["NVIDIA H100 80GB HBM3"] * 4)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    profile = probe()
    assert profile["kind"] == "gpu"
    assert profile["accelerator"] == "NVIDIA H100 80GB HBM3"
    assert profile["accelerator_count"] == 4
    assert profile["accelerator_memory_gb"] == pytest.approx(79.65, abs=0.01)
    assert profile["compute_capability"] == "9.0"
    assert profile["driver_version"] == "550.54.15"
    assert profile["power_limit_w"] == 700.0
    assert profile["cpu_cores"] >= 1
    assert fake.shutdowns == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-uuid-3")
    assert probe()["accelerator_count"] == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe()["kind"] == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # no such GPU: an NVML error
    assert probe()["kind"] == "cpu"


def test_parse_cpu_list():
    usable = sorted(os.sched_getaffinity(0))
    assert parse_cpu_list(str(usable[0])) == [usable[0]]
    if len(usable) >= 2 and usable[1] == usable[0] + 1:
        assert parse_cpu_list(f"{usable[0]}-{usable[1]}") == usable[:2]
        assert parse_cpu_list(f"{usable[1]}, {usable[0]},{usable[0]}") == usable[:2]


@pytest.mark.parametrize("text,message", [
    ("", "empty"), ("a", "bad cpu list item 'a'"), ("3-1", "end is below the start"),
    ("0,,1", "bad cpu list item ''"), ("-1", "bad cpu list item '-1'"),
    ("100000", r"cpu\(s\) \[100000\] are outside"),
])
def test_parse_cpu_list_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_cpu_list(text)


def _cpu_profile(**changes):
    profile = {"kind": "cpu", "accelerator": "", "accelerator_count": 0,
               "accelerator_memory_gb": 0.0, "compute_capability": "", "driver_version": "",
               "power_limit_w": 0.0, "cpu_model": "AMD EPYC", "cpu_cores": 2, "ram_gb": 11.77,
               "isa_flags": ["avx2", "avx512f"]}
    profile.update(changes)
    return profile


def _gpu_profile(**changes):
    profile = _cpu_profile(kind="gpu", accelerator="NVIDIA H100 80GB HBM3", accelerator_count=1,
                           accelerator_memory_gb=79.65, compute_capability="9.0",
                           driver_version="550.54.15", power_limit_w=700.0, cpu_cores=26)
    profile.update(changes)
    return profile


def test_class_ignores_driver_and_power_limit():
    base = hardware_class(_gpu_profile())
    assert hardware_class(_gpu_profile(driver_version="560.1", power_limit_w=350.0)) == base
    assert hardware_class(_cpu_profile(driver_version="x", power_limit_w=1.0)) == \
        hardware_class(_cpu_profile())


def test_class_separates_what_matters():
    assert hardware_class(_cpu_profile(cpu_cores=4))[0] != hardware_class(_cpu_profile())[0]
    assert hardware_class(_cpu_profile(cpu_cores=4))[1] != hardware_class(_cpu_profile())[1]
    assert hardware_class(_cpu_profile(isa_flags=["avx2"]))[0] != hardware_class(_cpu_profile())[0]
    assert hardware_class(_cpu_profile(ram_gb=31.2))[1] != hardware_class(_cpu_profile())[1]
    assert hardware_class(_gpu_profile(accelerator_count=8))[0] != hardware_class(_gpu_profile())[0]
    # Memory is compared in whole GiB, and flag order does not matter.
    assert hardware_class(_cpu_profile(ram_gb=11.9)) == hardware_class(_cpu_profile())
    assert hardware_class(_cpu_profile(isa_flags=["avx512f", "avx2"])) == \
        hardware_class(_cpu_profile())


def test_labels_are_readable():
    class_id, label = hardware_class(_gpu_profile())
    assert label == "gpu-nvidia-h100-80gb-hbm3-x1"
    assert len(class_id) == 16 and int(class_id, 16) >= 0
    assert hardware_class(_gpu_profile(accelerator="NVIDIA H200", accelerator_memory_gb=140.4,
                                       accelerator_count=8))[1] == "gpu-nvidia-h200-140gb-x8"
    cpu_id, cpu_label = hardware_class(_cpu_profile())
    assert cpu_label == f"cpu-amd-epyc-2c-{cpu_id[:4]}"
    intel = _cpu_profile(cpu_model="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", cpu_cores=16)
    assert hardware_class(intel)[1].startswith("cpu-intel-xeon-platinum-8480-16c-")


def test_probe_profile_has_a_class():
    class_id, label = hardware_class(probe())
    assert class_id == hardware_class(probe())[0]
    assert label.startswith(("cpu-", "gpu-"))


def test_probe_measures_host_bandwidth_and_reads_the_clock():
    profile = probe()
    assert 0.1 < profile["memory_bandwidth_gbs"] < 10_000  # GB/s: a real copy was timed
    assert profile["cpu_clock_ghz"] >= 0.0
    assert probe(measure_bandwidth=False)["memory_bandwidth_gbs"] == 0.0
    # neither is part of the hardware class: the measurement varies from run to run
    assert hardware_class(_cpu_profile(memory_bandwidth_gbs=20.5, cpu_clock_ghz=2.8)) == \
        hardware_class(_cpu_profile())


def test_bandwidth_is_bytes_read_and_written_by_the_fastest_copy():
    ticks = iter(i * 0.005 for i in range(10_000))  # every clock read is 5 ms later
    gbs = measure_memory_bandwidth(nbytes=8_000_000, seconds=0.05, min_runs=3,
                                   clock=lambda: next(ticks))
    assert gbs == pytest.approx(2 * 8_000_000 / 0.005 / 1e9)  # 3.2 GB/s
