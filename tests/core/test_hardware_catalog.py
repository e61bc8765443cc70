"""Hardware catalog: alias matching, free-text specs and farm profiles."""

from __future__ import annotations

import logging

import pytest

from metainf.hardware_catalog import (
    CATALOG,
    cpu_flops_per_cycle,
    cpu_peak_tflops,
    facts_from_profile,
    facts_from_text,
    lookup,
    parse_spec_numbers,
    split_count,
)


@pytest.mark.parametrize("text, name", [
    ("Nvidia GH200 GPU", "GH200"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("h100-sxm", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200 141GB HBM3e", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("Tesla T4", "T4"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA B200", "B200"),
    ("AMD Instinct MI250X", "MI250"),
    ("AMD Instinct MI300X", "MI300X"),
    ("Habana Gaudi2", "Gaudi2"),
    ("Intel(R) Data Center GPU Max 1550", "Intel Data Center GPU Max 1550"),
    ("AMD EPYC 7B13", "AMD EPYC"),
    ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Sapphire Rapids"),
])
def test_lookup_resolves_aliases(text, name):
    facts = lookup(text)
    assert facts is not None and facts.name == name


def test_unknown_names_do_not_match():
    assert lookup("Acme Quantum Abacus") is None
    assert lookup("") is None


def test_catalog_entries_have_the_facts_selection_needs():
    gpus = [f for f in CATALOG if f.kind != "cpu"]
    assert len(gpus) >= 15
    for f in gpus:
        assert f.vendor and f.architecture and f.memory_gb and f.bandwidth_tbs
        assert f.fp16_tflops and f.tdp_w and f.price_per_hour and f.interconnect


def test_free_text_spec_overrides_catalog_numbers():
    facts = facts_from_text("NVIDIA H200, 141 GB HBM3e, 4.8 TB/s, 989 TFLOPS bf16, $9.5/h")
    assert facts.name == "H200"
    assert facts.memory_gb == 141 and facts.bandwidth_tbs == 4.8
    assert facts.price_per_hour == 9.5


def test_unknown_text_warns_and_keeps_parsed_numbers(caplog):
    with caplog.at_level(logging.WARNING):
        facts = facts_from_text("Acme X1 accelerator, 64 GB, 2 TB/s, 500 TFLOPS")
    assert "not in the catalog" in caplog.text
    assert facts.source == "text" and facts.memory_gb == 64 and facts.bf16_tflops == 500


def test_parse_spec_numbers_reads_units():
    got = parse_spec_numbers("96 GB HBM3, 4 TB/s, 700 W, 32 cores")
    assert got == {"memory_gb": 96.0, "bandwidth_tbs": 4.0, "tdp_w": 700.0, "cpu_cores": 32.0}


def test_facts_from_profile_gpu_and_cpu():
    gpu = facts_from_profile({"kind": "gpu", "accelerator": "NVIDIA H100 80GB HBM3",
                              "accelerator_count": 2, "accelerator_memory_gb": 79.6}, 7.0)
    assert gpu.name == "H100 SXM" and gpu.count == 2 and gpu.price_per_hour == 7.0
    assert gpu.memory_gb == pytest.approx(79.6)
    cpu = facts_from_profile({"kind": "cpu", "cpu_model": "AMD EPYC 7B13", "cpu_cores": 2,
                              "ram_gb": 8, "isa_flags": ["avx2"]}, 0.1)
    assert cpu.kind == "cpu" and cpu.cpu_cores == 2 and cpu.memory_gb == 8
    assert cpu.vendor == "AMD" and cpu.isa_flags == ("avx2",) and cpu.price_per_hour == 0.1


def test_every_accelerator_has_a_16_bit_peak_and_the_t4_is_fp16_only():
    for f in CATALOG:
        if f.kind != "cpu":
            assert f.peak_16bit_tflops and f.bandwidth_tbs, f.name
    t4 = lookup("Tesla T4")
    assert t4.bf16_tflops is None and t4.fp16_tflops == 65 and t4.peak_16bit_tflops == 65
    assert lookup("H100").peak_16bit_tflops == 989


@pytest.mark.parametrize("text, count, rest", [
    ("4x NVIDIA H100 80GB", 4, "NVIDIA H100 80GB"),
    ("2 x H100 SXM", 2, "H100 SXM"),
    ("8XA100", 8, "A100"),
    ("0x T4", 0, "T4"),
    ("NVIDIA H100 80GB", None, "NVIDIA H100 80GB"),
    ("4x", None, "4x"),
    ("", None, ""),
])
def test_split_count_reads_a_leading_nx(text, count, rest):
    assert split_count(text) == (count, rest)


@pytest.mark.parametrize("flags, per_cycle", [
    (["avx2", "avx512f", "avx512_bf16", "fma"], (64, 128, 64)),
    (["avx2", "fma"], (32, 32, 32)),
    (["avx"], (16, 16, 16)),
    (["sse4_2"], (8, 8, 8)),
    (["asimd", "asimdhp", "bf16"], (16, 32, 32)),
    (["avx512f", "amx_tile", "amx_bf16", "avx512_fp16"], (64, 1024, 128)),
])
def test_cpu_flops_per_cycle_follow_simd_width_and_fma(flags, per_cycle):
    assert cpu_flops_per_cycle(flags) == per_cycle


def test_cpu_profile_gets_a_peak_from_its_clock_and_its_measured_bandwidth():
    profile = {"kind": "cpu", "cpu_model": "Intel(R) Xeon(R) Processor @ 2.80GHz",
               "cpu_cores": 2, "ram_gb": 8, "isa_flags": ["avx2", "avx512f", "fma"],
               "memory_bandwidth_gbs": 23.5}
    facts = facts_from_profile(profile)
    assert facts.bf16_tflops == pytest.approx(2 * 2.8 * 64 / 1000)  # clock from the name
    assert facts.bandwidth_tbs == pytest.approx(0.0235)
    clocked = facts_from_profile({**profile, "cpu_model": "AMD EPYC 7B13", "cpu_clock_ghz": 3.5,
                                  "isa_flags": ["avx2", "avx512f", "avx512_bf16"]})
    assert clocked.bf16_tflops == pytest.approx(2 * 3.5 * 128 / 1000)
    assert cpu_peak_tflops(2, 3.5, ["avx2", "fma"]) == pytest.approx((0.224, 0.224, 0.224))
    # an old profile (no clock, no measurement) invents nothing
    old = facts_from_profile({"kind": "cpu", "cpu_model": "AMD EPYC", "cpu_cores": 2,
                              "ram_gb": 8, "isa_flags": ["avx2"]})
    assert old.bf16_tflops is None and old.bandwidth_tbs is None
