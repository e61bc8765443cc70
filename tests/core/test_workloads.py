"""Workload specs, loaders, generators, statistics and labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from metainf.workloads import (
    Record,
    Request,
    WorkloadError,
    WorkloadSpec,
    build_requests,
    load_sharegpt,
    materialize,
    sample_path,
    shared_prefix_ratio,
    text_to_token_ids,
    workload_label,
    workload_stats,
)

VOCAB = 32000


def _error_text(exc_info: pytest.ExceptionInfo) -> str:
    return str(exc_info.value)


# --------------------------------------------------------------------------- validation


def test_unknown_option_is_refused_by_name():
    with pytest.raises(ValidationError) as exc:
        WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=4,
                     options={"prefix_tokens": 8, "prefix_tokns": 8})
    text = _error_text(exc)
    assert "prefix_tokns" in text and "options" in text and "suffix_tokens" in text


def test_option_values_are_checked():
    with pytest.raises(ValidationError, match="prefix_tokens"):
        WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=4,
                     options={"prefix_tokens": -1})
    with pytest.raises(ValidationError, match="output_len_median_ratio"):
        WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=4,
                     options={"output_len_median_ratio": 1.5})


@pytest.mark.parametrize("field,value", [("num_prompts", -3), ("num_prompts", 0),
                                         ("max_output_tokens", 0), ("num_prompts", 100_001),
                                         ("seed", -1)])
def test_bad_counts_are_refused_naming_the_field(field, value):
    kwargs = {"dataset": "synthetic-sharegpt", "num_prompts": 4, field: value}
    with pytest.raises(ValidationError) as exc:
        WorkloadSpec(**kwargs)
    assert field in _error_text(exc)


def test_unknown_field_and_dataset_are_refused():
    with pytest.raises(ValidationError, match="batch"):
        WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=4, batch=3)
    with pytest.raises(ValidationError, match="dataset"):
        WorkloadSpec(dataset="alpaca", num_prompts=4)


def test_path_is_required_for_files_and_refused_for_synthetic():
    with pytest.raises(ValidationError, match="path is required"):
        WorkloadSpec(dataset="sharegpt", num_prompts=4)
    with pytest.raises(ValidationError, match="path is not allowed"):
        WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=4, path="x.json")


def test_records_must_match_num_prompts_and_cap():
    rec = Record(prompt="hi", output_tokens=5)
    with pytest.raises(ValidationError, match="num_prompts"):
        WorkloadSpec(dataset="prompts", path="a.jsonl", num_prompts=2, records=[rec])
    with pytest.raises(ValidationError, match="max_output_tokens"):
        WorkloadSpec(dataset="prompts", path="a.jsonl", num_prompts=1, max_output_tokens=4,
                     records=[rec])


def test_defaults_are_filled_and_spec_is_frozen():
    spec = WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=4)
    assert spec.options == {"prefix_tokens": 512, "suffix_tokens": 64}
    assert spec.max_output_tokens == 128
    with pytest.raises(ValidationError):
        spec.num_prompts = 5
    assert WorkloadSpec(**spec.model_dump()) == spec


# --------------------------------------------------------------------------- generators


def test_shared_prefix_requests_share_exactly_the_prefix():
    spec = WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=32, max_output_tokens=16,
                        options={"prefix_tokens": 40, "suffix_tokens": 8})
    requests = build_requests(spec, VOCAB)
    assert len(requests) == 32
    prefix = requests[0].prompt_token_ids[:40]
    for r in requests:
        assert len(r.prompt_token_ids) == 48
        assert r.prompt_token_ids[:40] == prefix
        assert r.output_tokens == 16
        assert all(100 <= t < VOCAB for t in r.prompt_token_ids)
    # No two requests share more than the prefix.
    assert len({r.prompt_token_ids[40] for r in requests}) == 32
    assert workload_stats(spec, requests)["shared_prefix_ratio"] == pytest.approx(40 / 48)


def test_generators_are_deterministic_by_seed():
    for dataset in ("synthetic-shared-prefix", "synthetic-sharegpt"):
        a = build_requests(WorkloadSpec(dataset=dataset, num_prompts=16, seed=3), VOCAB)
        b = build_requests(WorkloadSpec(dataset=dataset, num_prompts=16, seed=3), VOCAB)
        c = build_requests(WorkloadSpec(dataset=dataset, num_prompts=16, seed=4), VOCAB)
        assert a == b
        assert a != c


def test_synthetic_sharegpt_outputs_spread_below_the_cap():
    cap = 256
    spec = WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=2000, max_output_tokens=cap)
    requests = build_requests(spec, VOCAB)
    outputs = np.array([r.output_tokens for r in requests])
    inputs = np.array([len(r.prompt_token_ids) for r in requests])
    assert outputs.min() >= 1 and outputs.max() <= cap
    assert (outputs == cap).mean() < 0.2
    assert np.median(outputs) < 0.5 * cap
    assert len(set(outputs.tolist())) > 50
    assert inputs.min() >= 4 and inputs.max() <= 1024
    assert np.mean(inputs) > np.median(inputs)  # long right tail, like ShareGPT


def test_requests_fit_a_small_vocabulary():
    spec = WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=8)
    for r in build_requests(spec, 50):
        assert all(25 <= t < 50 for t in r.prompt_token_ids)
    with pytest.raises(WorkloadError, match="vocab_size"):
        build_requests(spec, 1)


# --------------------------------------------------------------------------- file datasets


def test_sharegpt_sample_loads_and_skips_incomplete_entries():
    path = sample_path("sharegpt_sample.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    pairs = load_sharegpt(path)
    assert len(raw) > len(pairs) >= 55
    assert all(p.strip() and r.strip() for p, r in pairs)


def test_sharegpt_materialize_and_build_round_trip():
    spec = WorkloadSpec(dataset="sharegpt", path=str(sample_path("sharegpt_sample.json")),
                        num_prompts=20, max_output_tokens=64, seed=1)
    full = materialize(spec)
    assert full.records is not None and len(full.records) == 20
    assert Path(full.path).is_absolute()
    outs = [r.output_tokens for r in full.records]
    assert 1 <= min(outs) and max(outs) <= 64 and len(set(outs)) > 1
    # The materialised spec travels as JSON and builds the same requests on a worker.
    again = WorkloadSpec(**json.loads(full.model_dump_json()))
    assert again == full
    requests = build_requests(again, VOCAB)
    assert requests == build_requests(full, VOCAB)
    assert [r.output_tokens for r in requests] == outs
    first = full.records[0].prompt
    assert requests[0].prompt_token_ids == tuple(text_to_token_ids(first, VOCAB))
    assert materialize(spec) == full  # same seed, same sample
    moved = full.model_copy(update={"path": "/elsewhere/sharegpt_sample.json"})
    assert materialize(moved) is moved  # records travel; the file is not needed again


def test_prompts_sample_loads():
    spec = WorkloadSpec(dataset="prompts", path=str(sample_path("prompts_sample.jsonl")),
                        num_prompts=40, max_output_tokens=4096)
    full = materialize(spec)
    assert len({r.prompt for r in full.records}) == 40  # 40 rows, sampled without replacement
    assert all("step" in r.prompt.lower() for r in full.records)
    stats = workload_stats(full, build_requests(full, VOCAB))
    assert stats["output_len_max"] > stats["output_len_p50"] > 20


def test_relative_path_resolves_against_base_dir(tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}"}
            for i in range(5)]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = WorkloadSpec(dataset="prompts", path="qa.jsonl", num_prompts=12,
                        options={"prompt_col": "question", "response_col": "answer"})
    full = materialize(spec, base_dir=tmp_path)
    assert full.path == str(tmp_path / "qa.jsonl")
    assert len(full.records) == 12  # more prompts than rows: sampled with replacement
    assert {r.prompt for r in full.records} <= {r["question"] for r in rows}


def test_parquet_prompts_table(tmp_path):
    table = pa.table({"prompt": ["Add 2 and 3.", "Halve 10."],
                      "response": ["2 + 3 = 5. Answer: 5", "10 / 2 = 5. Answer: 5"]})
    pq.write_table(table, tmp_path / "t.parquet")
    spec = WorkloadSpec(dataset="prompts", path=str(tmp_path / "t.parquet"), num_prompts=2)
    assert sorted(r.prompt for r in materialize(spec).records) == ["Add 2 and 3.", "Halve 10."]


def test_file_errors_name_the_path_and_problem(tmp_path):
    missing = WorkloadSpec(dataset="sharegpt", path=str(tmp_path / "nope.json"), num_prompts=2)
    with pytest.raises(WorkloadError, match="nope.json.*does not exist"):
        materialize(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkloadError, match="bad.json is not valid JSON"):
        materialize(WorkloadSpec(dataset="sharegpt", path=str(bad), num_prompts=2))
    obj = tmp_path / "obj.json"
    obj.write_text('{"conversations": []}')
    with pytest.raises(WorkloadError, match="JSON list"):
        materialize(WorkloadSpec(dataset="sharegpt", path=str(obj), num_prompts=2))
    cols = tmp_path / "cols.jsonl"
    cols.write_text('{"question": "q", "answer": "a"}\n')
    missing_cols = r"cols.jsonl has no column\(s\) \['prompt', 'response'\]"
    with pytest.raises(WorkloadError, match=missing_cols):
        materialize(WorkloadSpec(dataset="prompts", path=str(cols), num_prompts=2))
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"prompt": "p", "response": "r"}\nnot json\n')
    with pytest.raises(WorkloadError, match="line 2"):
        materialize(WorkloadSpec(dataset="prompts", path=str(lines), num_prompts=2))


def test_build_requires_records_for_file_datasets():
    spec = WorkloadSpec(dataset="sharegpt", path="somewhere.json", num_prompts=2)
    with pytest.raises(WorkloadError, match="materialize"):
        build_requests(spec, VOCAB)


class CharTokenizer:
    """A hand-written tokenizer: one id per character."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_a_given_tokenizer_is_used_and_inputs_are_truncated():
    records = [Record(prompt="abcdef", output_tokens=3), Record(prompt="xy", output_tokens=1)]
    spec = WorkloadSpec(dataset="prompts", path="/x.jsonl", num_prompts=2,
                        options={"max_input_tokens": 4}, records=records)
    requests = build_requests(spec, VOCAB, tokenizer=CharTokenizer())
    assert requests == [Request((97, 98, 99, 100), 3), Request((120, 121), 1)]


# --------------------------------------------------------------------------- statistics


def test_stats_on_a_hand_made_case():
    requests = [Request((1, 2, 3, 4), 10), Request((1, 2, 3, 5), 20), Request((9, 9), 30),
                Request((7,), 40)]
    spec = WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=4)
    stats = workload_stats(spec, requests)
    assert stats["shared_prefix_ratio"] == pytest.approx(6 / 11)
    assert stats["num_prompts"] == 4
    assert stats["total_input_tokens"] == 11 and stats["total_output_tokens"] == 100
    assert stats["input_len_max"] == 4 and stats["output_len_max"] == 40
    assert stats["output_len_p50"] == pytest.approx(25.0)
    assert stats["output_len_mean"] == pytest.approx(25.0)
    assert stats["dataset"] == "synthetic-sharegpt"
    json.dumps(stats)  # plain values only


def test_shared_prefix_ratio_edge_cases():
    assert shared_prefix_ratio([(1, 2, 3)]) == 0.0
    assert shared_prefix_ratio([(1, 2), (1, 2)]) == 1.0
    # The best partner need not be adjacent in input order.
    assert shared_prefix_ratio([(5, 6, 7), (1, 1), (5, 6, 8)]) == pytest.approx(4 / 8)


# --------------------------------------------------------------------------- labels


def test_labels_are_stable_and_readable():
    spec = WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=32, max_output_tokens=16)
    assert workload_label(spec) == "synthetic-shared-prefix-n32-o16-s0"
    explicit = WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=32,
                            max_output_tokens=16,
                            options={"prefix_tokens": 512, "suffix_tokens": 64})
    assert workload_label(explicit) == workload_label(spec)
    other = WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=32, max_output_tokens=16,
                         options={"prefix_tokens": 128})
    label = workload_label(other)
    assert label.startswith("synthetic-shared-prefix-n32-o16-s0-") and label != workload_label(spec)
    assert workload_label(other.model_copy()) == label
    assert workload_label(WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=32,
                                       max_output_tokens=16, seed=1)).endswith("-s1")


def test_file_labels_depend_on_records_not_on_where_the_file_lies(tmp_path):
    spec = WorkloadSpec(dataset="sharegpt", path=str(sample_path("sharegpt_sample.json")),
                        num_prompts=8)
    copy = tmp_path / "sharegpt_sample.json"
    copy.write_bytes(sample_path("sharegpt_sample.json").read_bytes())
    here = materialize(spec)
    there = materialize(spec.model_copy(update={"path": str(copy)}))
    assert workload_label(here) == workload_label(there)
    assert workload_label(here).startswith("sharegpt-sharegpt-sample-n8-o128-s0-")
    reseeded = materialize(spec.model_copy(update={"seed": 5}))
    assert workload_label(reseeded) != workload_label(here)


def test_unknown_sample_lists_the_known_ones():
    with pytest.raises(WorkloadError, match="prompts_sample.jsonl"):
        sample_path("nothing.json")
