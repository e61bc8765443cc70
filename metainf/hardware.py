"""Hardware classes: a worker's profile without its name, as an id and a readable label."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

CLASS_FIELDS_GPU = ("kind", "accelerator", "accelerator_count", "accelerator_memory_gb",
                    "compute_capability")
CLASS_FIELDS_CPU = ("kind", "cpu_model", "cpu_cores", "ram_gb", "isa_flags")
"""Profile fields that define a hardware class (driver and power limit never do)."""


def class_fields(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile fields that define its hardware class, memory rounded to whole GiB."""
    if profile.get("kind") == "gpu":
        return {
            "kind": "gpu",
            "accelerator": str(profile.get("accelerator", "")),
            "accelerator_count": int(profile.get("accelerator_count", 0)),
            "accelerator_memory_gb": round(float(profile.get("accelerator_memory_gb", 0.0))),
            "compute_capability": str(profile.get("compute_capability", "")),
        }
    return {
        "kind": str(profile.get("kind", "cpu")),
        "cpu_model": str(profile.get("cpu_model", "")),
        "cpu_cores": int(profile.get("cpu_cores", 0)),
        "ram_gb": round(float(profile.get("ram_gb", 0.0))),
        "isa_flags": sorted(str(f) for f in profile.get("isa_flags", ())),
    }


def _slug(text: str) -> str:
    text = re.sub(r"\((?:R|TM|tm|r)\)", "", text)
    text = re.sub(r"@.*$", "", text)
    text = re.sub(r"\b(?:CPU|Processor|\d+-Core)\b", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def hardware_class(profile: Mapping[str, Any]) -> tuple[str, str]:
    """(class_id, label) of a profile: a short hash of its class fields and a readable name.

    A GPU worker's class is its accelerators (model, count, memory, compute capability);
    a CPU worker's is its CPU model, usable cores, RAM share and ISA flags. Driver version,
    power limit and worker name never change the class.
    """
    fields = class_fields(profile)
    blob = json.dumps(fields, sort_keys=True)
    class_id = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if fields["kind"] == "gpu":
        name = _slug(fields["accelerator"])
        memory = f"{fields['accelerator_memory_gb']}gb"
        if not re.search(r"\d+gb", name):
            name = f"{name}-{memory}"
        label = f"gpu-{name}-x{fields['accelerator_count']}"
    else:
        # CPU model names hide generations ("AMD EPYC"), so a hash of the class keeps
        # labels of different classes apart.
        label = f"cpu-{_slug(fields['cpu_model'])}-{fields['cpu_cores']}c-{class_id[:4]}"
    return class_id, label
