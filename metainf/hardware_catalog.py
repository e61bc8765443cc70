"""Facts about common accelerators and CPUs, found by name, alias or free text."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HardwareFacts:
    """What is known about one hardware kind (per device unless `count` says more).

    Numbers are public datasheet values (dense tensor TFLOPS, no sparsity); prices are
    typical cloud on-demand USD per hour per device and only a default.
    """

    name: str
    kind: str = "gpu"
    vendor: str = ""
    architecture: str = ""
    memory_gb: float | None = None
    memory_type: str = ""
    bandwidth_tbs: float | None = None
    bf16_tflops: float | None = None
    fp16_tflops: float | None = None
    interconnect: str = ""
    tdp_w: float | None = None
    price_per_hour: float | None = None
    aliases: tuple[str, ...] = ()
    count: int = 1
    cpu_cores: int | None = None
    isa_flags: tuple[str, ...] = field(default=())
    source: str = "catalog"

    def replace(self, **changes: Any) -> HardwareFacts:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def peak_16bit_tflops(self) -> float | None:
        """The 16-bit dense peak the engine gets: bf16, or fp16 where there is no bf16."""
        return self.bf16_tflops or self.fp16_tflops


CATALOG: tuple[HardwareFacts, ...] = (
    # T4: NVIDIA T4 Tensor Core GPU datasheet (PB-09256-001, 2019): 65 TFLOPS FP16/FP32
    # mixed-precision tensor, 8.1 TFLOPS FP32, 320 GB/s GDDR6, 16 GB, 70 W. Turing
    # (compute capability 7.5) has no bf16: vLLM runs bf16 models there in fp16, so the
    # 16-bit peak is fp16_tflops (see HardwareFacts.peak_16bit_tflops).
    HardwareFacts("T4", vendor="NVIDIA", architecture="Turing", memory_gb=16,
                  memory_type="GDDR6", bandwidth_tbs=0.32, bf16_tflops=None, fp16_tflops=65,
                  interconnect="PCIe Gen3", tdp_w=70, price_per_hour=0.53,
                  aliases=("t4", "tesla t4")),
    HardwareFacts("L4", vendor="NVIDIA", architecture="Ada Lovelace", memory_gb=24,
                  memory_type="GDDR6", bandwidth_tbs=0.30, bf16_tflops=121, fp16_tflops=121,
                  interconnect="PCIe Gen4", tdp_w=72, price_per_hour=0.80,
                  aliases=("l4", "nvidia l4")),
    HardwareFacts("A10G", vendor="NVIDIA", architecture="Ampere", memory_gb=24,
                  memory_type="GDDR6", bandwidth_tbs=0.60, bf16_tflops=70, fp16_tflops=70,
                  interconnect="PCIe Gen4", tdp_w=300, price_per_hour=1.01,
                  aliases=("a10g", "a10")),
    HardwareFacts("L40S", vendor="NVIDIA", architecture="Ada Lovelace", memory_gb=48,
                  memory_type="GDDR6", bandwidth_tbs=0.864, bf16_tflops=362, fp16_tflops=362,
                  interconnect="PCIe Gen4", tdp_w=350, price_per_hour=1.80,
                  aliases=("l40s", "l40 s")),
    HardwareFacts("A100 40GB", vendor="NVIDIA", architecture="Ampere", memory_gb=40,
                  memory_type="HBM2", bandwidth_tbs=1.555, bf16_tflops=312, fp16_tflops=312,
                  interconnect="NVLink 3 (600 GB/s)", tdp_w=400, price_per_hour=3.00,
                  aliases=("a100", "a100 40gb", "a100 sxm4 40gb", "a100 pcie 40gb",
                           "a100 40")),
    HardwareFacts("A100 80GB", vendor="NVIDIA", architecture="Ampere", memory_gb=80,
                  memory_type="HBM2e", bandwidth_tbs=2.039, bf16_tflops=312, fp16_tflops=312,
                  interconnect="NVLink 3 (600 GB/s)", tdp_w=400, price_per_hour=3.70,
                  aliases=("a100 80gb", "a100 sxm4 80gb", "a100 80gb pcie", "a100 80")),
    HardwareFacts("H100 PCIe", vendor="NVIDIA", architecture="Hopper", memory_gb=80,
                  memory_type="HBM2e", bandwidth_tbs=2.0, bf16_tflops=756, fp16_tflops=756,
                  interconnect="PCIe Gen5 (NVLink bridge 600 GB/s)", tdp_w=350,
                  price_per_hour=4.50,
                  aliases=("h100 pcie", "h100 pcie 80gb", "h100 80gb pcie", "h100pcie")),
    HardwareFacts("H100 SXM", vendor="NVIDIA", architecture="Hopper", memory_gb=80,
                  memory_type="HBM3", bandwidth_tbs=3.35, bf16_tflops=989, fp16_tflops=989,
                  interconnect="NVLink 4 (900 GB/s)", tdp_w=700, price_per_hour=6.50,
                  aliases=("h100", "h100 sxm", "h100 sxm5", "h100 sxm5 80gb", "h100 hbm3",
                           "h100 80gb hbm3", "h100sxm")),
    HardwareFacts("H200", vendor="NVIDIA", architecture="Hopper", memory_gb=141,
                  memory_type="HBM3e", bandwidth_tbs=4.8, bf16_tflops=989, fp16_tflops=989,
                  interconnect="NVLink 4 (900 GB/s)", tdp_w=700, price_per_hour=8.00,
                  aliases=("h200", "h200 sxm", "h200 141gb", "h200 nvl")),
    HardwareFacts("GH200", vendor="NVIDIA", architecture="Grace Hopper", memory_gb=96,
                  memory_type="HBM3 (+480 GB LPDDR5X CPU memory)", bandwidth_tbs=4.0,
                  bf16_tflops=989, fp16_tflops=989,
                  interconnect="NVLink-C2C (900 GB/s CPU-GPU)", tdp_w=1000,
                  price_per_hour=5.50,
                  aliases=("gh200", "grace hopper", "gh200 480gb", "gh200 144gb")),
    HardwareFacts("B200", vendor="NVIDIA", architecture="Blackwell", memory_gb=192,
                  memory_type="HBM3e", bandwidth_tbs=8.0, bf16_tflops=2250, fp16_tflops=2250,
                  interconnect="NVLink 5 (1.8 TB/s)", tdp_w=1000, price_per_hour=10.00,
                  aliases=("b200", "b200 sxm", "blackwell b200")),
    HardwareFacts("MI250", vendor="AMD", architecture="CDNA2", memory_gb=128,
                  memory_type="HBM2e", bandwidth_tbs=3.2, bf16_tflops=362, fp16_tflops=362,
                  interconnect="Infinity Fabric", tdp_w=500, price_per_hour=3.00,
                  aliases=("mi250", "mi250x", "instinct mi250", "instinct mi250x")),
    HardwareFacts("MI300X", vendor="AMD", architecture="CDNA3", memory_gb=192,
                  memory_type="HBM3", bandwidth_tbs=5.3, bf16_tflops=1307, fp16_tflops=1307,
                  interconnect="Infinity Fabric (896 GB/s)", tdp_w=750, price_per_hour=6.00,
                  aliases=("mi300x", "instinct mi300x", "mi300")),
    HardwareFacts("Gaudi2", kind="accelerator", vendor="Intel Habana", architecture="Gaudi 2",
                  memory_gb=96, memory_type="HBM2e", bandwidth_tbs=2.46, bf16_tflops=432,
                  fp16_tflops=432, interconnect="24x 100 GbE RoCE", tdp_w=600,
                  price_per_hour=3.00,
                  aliases=("gaudi2", "gaudi 2", "habana gaudi2", "hl 225", "hl225")),
    HardwareFacts("Intel Data Center GPU Max 1550", vendor="Intel",
                  architecture="Xe-HPC (Ponte Vecchio)", memory_gb=128, memory_type="HBM2e",
                  bandwidth_tbs=3.2, bf16_tflops=832, fp16_tflops=832, interconnect="Xe Link",
                  tdp_w=600, price_per_hour=3.00,
                  aliases=("max 1550", "gpu max 1550", "data center gpu max",
                           "data center gpu max 1550", "ponte vecchio", "pvc 1550")),
    HardwareFacts("Generic x86 server CPU", kind="cpu", vendor="", architecture="x86-64",
                  memory_gb=None, memory_type="DDR4/DDR5", bandwidth_tbs=0.1, bf16_tflops=1.0,
                  fp16_tflops=1.0, interconnect="", tdp_w=200, price_per_hour=0.10,
                  aliases=("x86", "x86 64", "generic cpu", "server cpu", "cpu"),
                  cpu_cores=None, isa_flags=("avx2",)),
    HardwareFacts("AMD EPYC", kind="cpu", vendor="AMD", architecture="Zen 4 (Genoa)",
                  memory_gb=None, memory_type="DDR5 (12 channels)", bandwidth_tbs=0.46,
                  bf16_tflops=5.0, fp16_tflops=5.0, interconnect="Infinity Fabric",
                  tdp_w=360, price_per_hour=0.10, aliases=("epyc", "amd epyc", "genoa"),
                  cpu_cores=96, isa_flags=("avx2", "avx512f", "avx512_bf16")),
    HardwareFacts("Intel Xeon Sapphire Rapids", kind="cpu", vendor="Intel",
                  architecture="Sapphire Rapids (4th gen Xeon Scalable)", memory_gb=None,
                  memory_type="DDR5 (8 channels)", bandwidth_tbs=0.31, bf16_tflops=60.0,
                  fp16_tflops=60.0, interconnect="UPI", tdp_w=350, price_per_hour=0.10,
                  aliases=("sapphire rapids", "xeon sapphire rapids", "xeon platinum 8480",
                           "xeon 8480", "platinum 8480", "xeon platinum 8488c", "spr"),
                  cpu_cores=56, isa_flags=("avx2", "avx512f", "avx512_bf16", "amx_tile")),
)
"""Every catalog entry."""


def _normalize(text: str) -> list[str]:
    """Lower-case tokens with sizes glued to their unit ('80 GB' -> '80gb')."""
    text = text.lower().replace("_", " ")
    text = re.sub(r"(\d+(?:\.\d+)?)\s*(gb|gib)\b", r"\1gb", text)
    return re.findall(r"[a-z0-9.]+", text.replace("-", " "))


def _alias_index() -> list[tuple[tuple[str, ...], HardwareFacts]]:
    index = []
    for facts in CATALOG:
        for alias in {facts.name.lower(), *facts.aliases}:
            index.append((tuple(_normalize(alias)), facts))
    return index


_INDEX = _alias_index()


def lookup(name_or_text: str) -> HardwareFacts | None:
    """The catalog entry a name or text refers to, or None when nothing matches.

    A name matches when every token of one of an entry's aliases appears in it; the
    longest alias matched wins ("NVIDIA H100 PCIe" is the PCIe card, "NVIDIA H100 80GB
    HBM3" the SXM one).
    """
    if not name_or_text or not name_or_text.strip():
        return None
    tokens = _normalize(name_or_text)
    token_set = set(tokens)
    compact = "".join(tokens)
    best: tuple[int, int, HardwareFacts] | None = None
    for alias_tokens, facts in _INDEX:
        if "".join(alias_tokens) == compact:
            return facts
        if alias_tokens and set(alias_tokens) <= token_set:
            score = (len(alias_tokens), len("".join(alias_tokens)))
            if best is None or score > best[:2]:
                best = (*score, facts)
    return None if best is None else best[2]


_NUM = r"(\d+(?:\.\d+)?)"
_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("bandwidth_tbs", _NUM + r"\s*tb/?s", 1.0),
    ("bandwidth_tbs", _NUM + r"\s*gb/s", 1e-3),
    ("bf16_tflops", _NUM + r"\s*tflops?\s*(?:\(?\s*)?(?:bf16|bfloat16)", 1.0),
    ("fp16_tflops", _NUM + r"\s*tflops?\s*(?:\(?\s*)?(?:fp16|half)", 1.0),
    ("bf16_tflops", _NUM + r"\s*tflops?", 1.0),
    ("memory_gb", _NUM + r"\s*(?:gb|gib)\b(?!/)", 1.0),
    ("memory_gb", _NUM + r"\s*tb\b(?!/)", 1000.0),
    ("tdp_w", _NUM + r"\s*w\b", 1.0),
    ("price_per_hour", r"\$\s*" + _NUM + r"\s*(?:/|per)\s*(?:h|hr|hour)\b", 1.0),
    ("cpu_cores", r"(\d+)\s*(?:cores?|vcpus?|cpus?)\b", 1.0),
)


def parse_spec_numbers(text: str) -> dict[str, float]:
    """Numbers a free-text spec states: memory, bandwidth, TFLOPS, watts, price, cores."""
    found: dict[str, float] = {}
    low = text.lower()
    for key, pattern, scale in _PATTERNS:
        if key in found:
            continue
        m = re.search(pattern, low)
        if m:
            value = float(m.group(1)) * scale
            if math.isfinite(value) and value > 0:
                found[key] = value
    if "bf16_tflops" in found and "fp16_tflops" not in found:
        found["fp16_tflops"] = found["bf16_tflops"]
    return found


MAX_COUNT = 64
"""The most devices (or copies of a hardware class) one hardware option may stand for."""

_COUNT = re.compile(r"^\s*(\d+)\s*[x\u00d7]\s*(?=\S)(.*)$", re.IGNORECASE | re.DOTALL)


def split_count(text: str) -> tuple[int | None, str]:
    """A leading 'Nx' of a hardware name or text as (N, the rest); (None, text) without one.

    '4x NVIDIA H100 80GB' -> (4, 'NVIDIA H100 80GB'); the count is not checked here.
    """
    m = _COUNT.match(text or "")
    if not m or not m.group(2).strip():
        return None, text
    return int(m.group(1)), m.group(2).strip()


# Dense FLOPs per cycle per core by ISA, counting an FMA as 2 FLOPs and assuming two
# vector FMA pipes per core (Intel 64 and IA-32 Architectures Optimization Reference
# Manual, "peak FLOPs per cycle"; Arm Neoverse N1/V1 software optimization guides).
# 16-bit rates: AVX512_BF16 VDPBF16PS does two bf16 products per fp32 lane (2x fp32);
# AVX512_FP16 has twice the lanes of fp32; Intel AMX (TMUL) does 1,024 bf16/fp16 FLOPs
# per cycle per core (Intel, "Accelerate AI workloads with Intel AMX", 2023).
_FP32_FLOPS_PER_CYCLE: tuple[tuple[frozenset[str], float], ...] = (
    (frozenset({"avx512f"}), 64.0),          # 16 fp32 lanes x 2 (FMA) x 2 pipes
    (frozenset({"avx2", "fma"}), 32.0),      # 8 lanes x 2 x 2
    (frozenset({"sve"}), 16.0),              # vector length unknown: 128-bit, as NEON
    (frozenset({"asimd"}), 16.0),            # NEON: 4 lanes x 2 x 2
    (frozenset({"neon"}), 16.0),
    (frozenset({"avx"}), 16.0),              # 8 lanes, separate add and multiply
)
_SSE_FLOPS_PER_CYCLE = 8.0
"""4 fp32 lanes, separate add and multiply: any x86-64 CPU."""


def cpu_flops_per_cycle(isa_flags: Iterable[str]) -> tuple[float, float, float]:
    """(fp32, bf16, fp16) dense FLOPs per cycle per core that a CPU's ISA flags allow."""
    flags = {str(f).lower() for f in isa_flags}
    fp32 = next((rate for need, rate in _FP32_FLOPS_PER_CYCLE if need <= flags),
                _SSE_FLOPS_PER_CYCLE)
    bf16 = fp16 = fp32  # without 16-bit instructions, 16-bit math runs at the fp32 rate
    if "avx512_bf16" in flags or {"bf16", "asimd"} <= flags or "svebf16" in flags:
        bf16 = 2 * fp32
    if "avx512_fp16" in flags or "asimdhp" in flags or "fphp" in flags:
        fp16 = 2 * fp32
    if "amx_bf16" in flags or "amx_tile" in flags:
        bf16 = max(bf16, 1024.0)
    if "amx_fp16" in flags:
        fp16 = max(fp16, 1024.0)
    return fp32, bf16, fp16


def cpu_peak_tflops(cores: int, clock_ghz: float, isa_flags: Iterable[str]
                    ) -> tuple[float, float, float]:
    """(fp32, bf16, fp16) dense peak TFLOPS: cores x clock x FLOPs per cycle of the ISA."""
    per_cycle = cpu_flops_per_cycle(isa_flags)
    return tuple(cores * clock_ghz * rate / 1000.0 for rate in per_cycle)  # type: ignore


def clock_from_cpu_model(model: str) -> float | None:
    """The clock a CPU model name states ('Intel(R) Xeon(R) ... @ 2.80GHz' -> 2.8), or None."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*ghz", model or "", re.IGNORECASE)
    if not m:
        return None
    value = float(m.group(1))
    return value if 0.1 <= value <= 10 else None


def _vendor_from_text(text: str) -> str:
    low = text.lower()
    for key, vendor in (("nvidia", "NVIDIA"), ("amd", "AMD"), ("intel", "Intel"),
                        ("habana", "Intel Habana"), ("apple", "Apple"), ("arm", "Arm")):
        if key in low:
            return vendor
    return ""


def facts_from_text(text: str) -> HardwareFacts:
    """Facts for a free-text spec: the catalog entry it names (numbers stated override)."""
    numbers = parse_spec_numbers(text)
    base = lookup(text)
    if base is None:
        log.warning("hardware %r is not in the catalog; describing it from its text alone", text)
        cpu_words = ("cpu", "xeon", "epyc", "core i", "ryzen", "graviton")
        kind = "cpu" if any(w in text.lower() for w in cpu_words) else "gpu"
        base = HardwareFacts(name=text.strip(), kind=kind, vendor=_vendor_from_text(text),
                             source="text")
    changes: dict[str, Any] = {k: v for k, v in numbers.items() if k != "cpu_cores"}
    if "cpu_cores" in numbers:
        changes["cpu_cores"] = int(numbers["cpu_cores"])
    return base.replace(**changes) if changes else base


def facts_from_profile(profile: dict[str, Any], price_per_hour: float | None = None
                       ) -> HardwareFacts:
    """Facts for a farm hardware class from its probed profile (and the farm's price)."""
    kind = str(profile.get("kind") or ("gpu" if profile.get("accelerator") else "cpu"))
    price = price_per_hour if price_per_hour and price_per_hour > 0 else None
    cores = profile.get("cpu_cores")
    isa = tuple(str(f) for f in profile.get("isa_flags") or ())
    if kind == "gpu" and profile.get("accelerator"):
        accel = str(profile["accelerator"])
        base = lookup(accel)
        if base is None:
            log.warning("accelerator %r is not in the catalog; describing it from its profile",
                        accel)
            base = HardwareFacts(name=accel, vendor=_vendor_from_text(accel), source="profile")
        mem = profile.get("accelerator_memory_gb") or base.memory_gb
        return base.replace(
            count=int(profile.get("accelerator_count") or 1),
            memory_gb=float(mem) if mem else None,
            tdp_w=float(profile.get("power_limit_w") or 0) or base.tdp_w,
            price_per_hour=price if price is not None else base.price_per_hour,
            cpu_cores=int(cores) if cores else None,
            isa_flags=isa,
        )
    cpu_model = str(profile.get("cpu_model") or "unknown CPU")
    base = lookup(cpu_model)
    if base is None or base.kind != "cpu":
        base = CATALOG_BY_NAME["Generic x86 server CPU"]
    ram = profile.get("ram_gb")
    # Peak from cores x clock x the ISA's FLOPs per cycle, only where the clock is known
    # (the profile's probe or the model name): no invented clock.
    clock = _positive_float(profile.get("cpu_clock_ghz")) or clock_from_cpu_model(cpu_model)
    bf16 = fp16 = None
    if cores and clock:
        _, bf16, fp16 = cpu_peak_tflops(int(cores), clock, isa)
    # Bandwidth the worker measured at registration (GB/s), only where it did.
    measured = _positive_float(profile.get("memory_bandwidth_gbs"))
    return HardwareFacts(
        name=cpu_model, kind="cpu", vendor=_vendor_from_text(cpu_model) or base.vendor,
        architecture=base.architecture, memory_gb=float(ram) if ram else None,
        memory_type=base.memory_type,
        bandwidth_tbs=round(measured / 1000.0, 6) if measured else None,
        bf16_tflops=round(bf16, 4) if bf16 else None,
        fp16_tflops=round(fp16, 4) if fp16 else None,
        interconnect="", tdp_w=None, price_per_hour=price, aliases=(),
        count=1, cpu_cores=int(cores) if cores else None, isa_flags=isa, source="profile",
    )


def _positive_float(value: Any) -> float | None:
    """value as a finite float > 0, else None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


CATALOG_BY_NAME = {f.name: f for f in CATALOG}
"""Catalog entries by their canonical name."""
