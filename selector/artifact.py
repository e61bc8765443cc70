"""The trained MetaInf artefact: what a trained model holds, saved versioned, the newest loaded.

Training is in :mod:`metainf.selector.training`.

A model directory holds one folder per version (a short hash of data + config) and a
``LATEST`` file naming the newest::

    MODEL_DIR/LATEST
    MODEL_DIR/<version>/manifest.json        config, mapping, metric, methods, known entities
    MODEL_DIR/<version>/xgboost.ubj          the level head (absolute log cost), XGBoost format
    MODEL_DIR/<version>/xgboost-ranker.ubj   the ranking head (task-relative log cost)
    MODEL_DIR/<version>/metainf-state.npz    the selector's snapping values and method features
    MODEL_DIR/<version>/featurizer.joblib    fitted SVDs and scalers (sklearn parts)
    MODEL_DIR/<version>/arrays.npz           method features, known hardware embeddings

Versions are kept: :func:`list_versions` shows them, :func:`promote` points LATEST at
any of them (a roll back), and a serving Selector follows LATEST.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from metainf.selector.descriptions import Entity
from metainf.selector.embeddings import Embedder
from metainf.selector.features import TaskFeaturizer
from metainf.selector.meta_learner import MetaInfSelector
from metainf.selector.table import TableMapping

log = logging.getLogger(__name__)

FORMAT_VERSION = 5
"""Layout version of a saved model folder (2: a ranking head beside the level head; 3: its
prior and departure; 4: intervals, and a level relative to the roofline; 5: local priors,
per hardware and per task, and the prior each departure starts from)."""

NEAREST_STYLE = "rich"
"""Description style whose embeddings decide the nearest known hardware."""

KIND_MISMATCH_PENALTY = 25.0
"""Nearest-hardware distance added between a CPU and an accelerator (5 doublings squared)."""

SERVING_EMBEDDING_PRECISION = "bfloat16"
"""Precision in which a loaded model embeds descriptions it has not seen (Select).

bf16 only where the CPU has it natively, float32 elsewhere, and always float32 in
training. Against float32, on 136 hardware texts (the catalog's names and aliases, free
text): cosine >= 0.99998, the same choice, candidate order and nearest known hardware
in 5,440 Selects of three models (one text, 'x86', moved predicted values by up to 6%);
the sentence-transformer forward, ~90 % of a first-seen Select, ran 1.45-1.65x faster.
"""


class ModelNotFoundError(FileNotFoundError):
    """No trained model where one was expected."""


def how_to_train(model_dir: str | Path | None = None) -> str:
    """The hint given when no model is trained yet."""
    where = str(model_dir) if model_dir else "MODEL_DIR"
    return (f"no trained model in {where}: train one with `metainf train --data FILE "
            f"(or --campaign ID --coordinator HOST:PORT) --out {where}` and start the "
            f"coordinator with --model-dir {where}")


@dataclass
class TrainedModel:
    """A fitted featurizer and meta-learner with what Select needs to know about the data."""

    version: str
    featurizer: TaskFeaturizer
    selector: MetaInfSelector
    mapping: TableMapping
    methods: list[str]
    method_features: np.ndarray
    methods_by_hardware: dict[str, list[str]]
    prices: dict[str, float | None]
    known: dict[str, dict[str, Entity]]
    hardware_names: list[str]
    hardware_embeddings: np.ndarray
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def metric(self) -> str:
        """The metric column the model predicts."""
        return self.mapping.metric_col

    @property
    def minimize(self) -> bool:
        """True when lower metric values are better (runtime); False for throughput."""
        return self.mapping.minimize

    def nearest_embedder(self) -> Embedder:
        """The embedder used for descriptions (and for nearest-hardware matching)."""
        emb = getattr(self.featurizer, "embedder_", None)
        if emb is None:
            if not hasattr(self, "_embedder"):
                self._embedder = Embedder(self.config.get("embedder_path"))
            emb = self._embedder
        return emb

    def nearest_hardware(self, entity: Entity) -> str | None:
        """The known hardware most like an unseen one (None when the table has none).

        Distance is taken in the hardware embedding space: the squared distance of the
        unit-norm embeddings of the rich descriptions, plus the mean squared difference
        in doublings of the facts both sides state (memory, bandwidth, TFLOPS, cores),
        plus a large penalty when one is a CPU and the other an accelerator. Stated
        numbers thus outweigh wording, and a name with no numbers matches by its text.
        """
        if not self.hardware_names:
            return None
        if "nearest" not in self.cache:
            self.cache["nearest"] = np.array([_signature(self.known["hardware"][h].facts)
                                              for h in self.hardware_names])
        known = self.cache["nearest"]
        vec = self.nearest_embedder().encode([entity.text(NEAREST_STYLE)])[0]
        emb = self.hardware_embeddings
        d_emb = np.sum((emb / np.linalg.norm(emb, axis=1, keepdims=True)
                        - vec / (np.linalg.norm(vec) + 1e-12)) ** 2, axis=1)
        mine = _signature(entity.facts)
        diff = (known[:, :-1] - mine[:-1]) ** 2
        have = np.isfinite(diff)
        d_facts = np.where(have, diff, 0.0).sum(axis=1) / np.maximum(have.sum(axis=1), 1)
        kind = np.where(np.isfinite(known[:, -1]) & np.isfinite(mine[-1])
                        & (known[:, -1] != mine[-1]), KIND_MISMATCH_PENALTY, 0.0)
        return self.hardware_names[int(np.argmin(d_emb + d_facts + kind))]

    def predict_cost(self, X: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """Predicted cost [n_tasks, n_methods] (lower is better) of task features X."""
        return self.selector.predict_cost(X, self.method_features if M is None else M)

    def save(self, model_dir: str | Path, set_latest: bool = True) -> Path:
        """Write this version under MODEL_DIR/<version>/ and point LATEST at it."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        final = model_dir / self.version
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.version}-", dir=model_dir))
        try:
            self.selector.save_state(tmp)
            joblib.dump(self.featurizer, tmp / "featurizer.joblib")
            np.savez(tmp / "arrays.npz", method_features=self.method_features,
                     hardware_embeddings=self.hardware_embeddings)
            manifest = {
                "format": FORMAT_VERSION,
                "version": self.version,
                "config": self.config,
                "mapping": self.mapping.to_dict(),
                "metric": self.metric,
                "minimize": self.minimize,
                "methods": self.methods,
                "methods_by_hardware": self.methods_by_hardware,
                "prices": self.prices,
                "hardware_names": self.hardware_names,
                "selector_params": self.selector.get_params(),
                "known": {axis: [e.to_dict() for e in ents.values()]
                          for axis, ents in self.known.items()},
                "info": self.info,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if set_latest:
            _point_latest(model_dir, self.version)
        self.path = final
        log.info("saved model %s to %s", self.version, final)
        return final


def _point_latest(model_dir: Path, version: str) -> None:
    """Point LATEST at a version, atomically (a reader sees the old name or the new)."""
    tmp_pointer = model_dir / f".LATEST.{os.getpid()}.{threading.get_ident()}"
    tmp_pointer.write_text(version + "\n")
    os.replace(tmp_pointer, model_dir / "LATEST")


def _signature(facts) -> np.ndarray:
    """Key hardware facts in doublings (log2; NaN where unknown), then 1 for a CPU."""
    def _log2(key: str) -> float:
        v = facts.get(key)
        return float(np.log2(v)) if v is not None and v > 0 else np.nan

    is_cpu = facts.get("is_cpu")
    return np.array([_log2("memory_gb"), _log2("bandwidth_tbs"), _log2("bf16_tflops"),
                     facts.get("log2_cpu_cores", np.nan) if is_cpu else np.nan,
                     np.nan if is_cpu is None else float(is_cpu)])


def _version_dir(model_dir: Path) -> Path:
    if (model_dir / "manifest.json").exists():
        return model_dir
    pointer = model_dir / "LATEST"
    if pointer.exists():
        version = pointer.read_text(encoding="utf-8").strip()
        if (model_dir / version / "manifest.json").exists():
            return model_dir / version
        log.warning("LATEST names %s but %s has no such model; using the newest folder",
                    version, model_dir)
    candidates = sorted((p for p in model_dir.glob("*/manifest.json")),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ModelNotFoundError(how_to_train(model_dir))
    return candidates[-1].parent


def latest_version(model_dir: str | Path) -> str | None:
    """The version LATEST names (or the newest folder), None when there is no model."""
    try:
        return _version_dir(Path(model_dir)).name
    except (ModelNotFoundError, OSError):
        return None


def load_model(model_dir: str | Path) -> TrainedModel:
    """Load the newest model of MODEL_DIR (or a version folder itself)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelNotFoundError(how_to_train(model_dir))
    d = _version_dir(model_dir)
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelNotFoundError(f"model {d} has format {manifest.get('format')}, this "
                                 f"version reads {FORMAT_VERSION}: retrain it")
    selector = MetaInfSelector.load_state(d, manifest["selector_params"],
                                          manifest.get("info", {})).for_serving()
    arrays = np.load(d / "arrays.npz")
    known = {axis: {e["key"]: Entity.from_dict(e) for e in ents}
             for axis, ents in manifest["known"].items()}
    featurizer = joblib.load(d / "featurizer.joblib")
    if getattr(featurizer, "embedder_", None) is not None:
        featurizer.embedder_.precision = SERVING_EMBEDDING_PRECISION
    return TrainedModel(
        version=manifest["version"],
        featurizer=featurizer,
        selector=selector,
        mapping=TableMapping.from_dict(manifest["mapping"]),
        methods=list(manifest["methods"]),
        method_features=arrays["method_features"],
        methods_by_hardware={k: list(v) for k, v in manifest["methods_by_hardware"].items()},
        prices=dict(manifest["prices"]),
        known=known,
        hardware_names=list(manifest["hardware_names"]),
        hardware_embeddings=arrays["hardware_embeddings"],
        config=dict(manifest["config"]),
        info=dict(manifest.get("info", {})),
        path=d,
    )


VERSION_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz-_.")
"""Characters a version name may hold (versions are short hashes; no path separators)."""


def check_version_name(version: str) -> str | None:
    """The problem with a version name given by a user (a path, empty...), or None."""
    if not version:
        return "version: required"
    if len(version) > 64 or not set(version) <= VERSION_CHARS or version.startswith("."):
        return f"version: {version[:80]!r} is not a model version (a short hash like 3f2a9c1b0d4e)"
    return None


def promote(model_dir: str | Path, version: str) -> Path:
    """Make a kept version the one Select serves (LATEST names it); returns its folder.

    Raises ValueError for a malformed name and ModelNotFoundError for a version the
    directory does not hold (the message lists the versions it has)."""
    problem = check_version_name(version)
    if problem:
        raise ValueError(problem)
    model_dir = Path(model_dir)
    folder = model_dir / version
    if not (folder / "manifest.json").is_file():
        kept = [v["version"] for v in list_versions(model_dir)] if model_dir.is_dir() else []
        raise ModelNotFoundError(f"version: no model {version} in {model_dir} (kept: "
                                 f"{', '.join(kept) or 'none'})")
    _point_latest(model_dir, version)
    log.info("model %s promoted in %s", version, model_dir)
    return folder


def list_versions(model_dir: str | Path) -> list[dict[str, Any]]:
    """Every version kept in MODEL_DIR, oldest first: its name, when it was trained, on how
    many tasks and measured pairs, whether it serves (LATEST), and the record of an
    automatic retraining (``info["retrain"]``: rows, held-out scores, promoted and why)
    when it came from one. A version that cannot be read is listed with its error."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelNotFoundError(how_to_train(model_dir))
    serving = latest_version(model_dir)
    out = []
    for manifest_path in model_dir.glob("*/manifest.json"):
        folder = manifest_path.parent
        if folder.name.startswith("."):
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            info = manifest.get("info", {})
            error = "" if manifest.get("format") == FORMAT_VERSION else (
                f"format {manifest.get('format')}, this version reads {FORMAT_VERSION}")
        except (OSError, ValueError) as exc:
            info, error = {}, f"unreadable manifest: {exc}"
        out.append({"version": folder.name, "trained_at": info.get("created_at"),
                    "n_tasks": info.get("n_tasks"), "n_pairs": info.get("n_pairs"),
                    "serving": folder.name == serving, "retrain": info.get("retrain"),
                    "error": error})
    return sorted(out, key=lambda v: (v["trained_at"] or 0.0, v["version"]))
