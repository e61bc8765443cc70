"""First-seen text: the sentence-transformer forward of a Select, backend by backend.

Embeds the same hardware descriptions (as a Select embeds them: the rich description of a
first-seen hardware text, ~130 tokens, and of the catalog's names) one text at a time on
one thread, with each backend in turn, interleaved so that a busy machine slows them
alike: torch float32 (what training uses), OpenVINO float32 (the serving backend,
selector/embeddings.py), on CPUs with native bf16 also torch bf16 and OpenVINO bf16 (what
serves there), and where installed ONNX Runtime float32 and dynamic int8 (exported here
from the same local model files). Prints per backend p50/p90 latency, the
ratio to torch, the cosine to torch float32 (min and mean), and, on a model trained on
make_synthetic_table's table, whether any Select answer changes (method, hardware,
candidate order, nearest known hardware) and by how much the predicted values move.

Bounds a serving backend must keep: cosine >= 0.999 to float32 and unchanged choices.

    python scripts/bench_embeddings.py                 # about 2 minutes on 2 cores
    python scripts/bench_embeddings.py --texts 120 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_select
import benchlib

log = logging.getLogger("bench_embeddings")

MIN_COSINE = 0.999
"""Cosine to the float32 embedding a serving backend must keep (issue: first-seen text)."""


def texts_to_embed(n: int) -> list[str]:
    """Rich descriptions of n first-seen hardware texts and of every catalog entry."""
    from metainf.hardware_catalog import CATALOG
    from metainf.selector.artifact import NEAREST_STYLE
    from metainf.selector.descriptions import hardware_entity_from_text

    new = [bench_select.first_seen_text(c, k, "emb/") for c in range(2) for k in range(n // 2)]
    return [hardware_entity_from_text(t).text(NEAREST_STYLE)
            for t in new + [f.name for f in CATALOG]]


def onnx_runtime_forwards(st_model, workdir: Path) -> dict[str, Callable]:
    """ONNX Runtime float32 and dynamic int8 forwards (empty when not installed)."""
    try:
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        log.info("ONNX Runtime not measured: %s", exc)
        return {}
    from metainf.selector.embeddings import last_hidden_module

    transformer = st_model[0]
    names = ("input_ids", "attention_mask", "token_type_ids")

    example = transformer.preprocess(["an example text"])
    fp32, int8 = workdir / "model.onnx", workdir / "model-int8.onnx"
    try:
        torch.onnx.export(last_hidden_module(transformer), tuple(example[k] for k in names),
                          str(fp32),
                          input_names=list(names), output_names=["hidden"],
                          dynamic_axes={k: {0: "b", 1: "s"} for k in (*names, "hidden")},
                          opset_version=17, dynamo=False)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    except Exception as exc:  # e.g. the onnx package is missing
        log.info("ONNX export failed, ONNX Runtime not measured: %s", exc)
        return {}

    def forward(path: Path) -> Callable:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def embed(text: str) -> np.ndarray:
            features = st_model.preprocess([text])
            hidden = session.run(None, {k: features[k].numpy() for k in names})[0]
            features = dict(features, token_embeddings=torch.from_numpy(hidden))
            for module in list(st_model)[1:]:
                features = module(features)
            out = torch.nn.functional.normalize(features["sentence_embedding"].float(), dim=1)
            return out.numpy()
        return embed

    return {"onnxruntime-fp32": forward(fp32), "onnxruntime-int8": forward(int8)}


def measure(forwards: dict[str, Callable], texts: list[str], rounds: int
            ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per text of each forward (interleaved per text) and its first vectors."""
    times: dict[str, list[float]] = {k: [] for k in forwards}
    vectors: dict[str, list[np.ndarray]] = {k: [] for k in forwards}
    for f in forwards.values():
        for t in texts[:3]:
            f(t)
    for r in range(rounds):
        for text in texts:
            for name, f in forwards.items():
                t0 = time.perf_counter()
                v = f(text)
                times[name].append(time.perf_counter() - t0)
                if r == 0:
                    vectors[name].append(np.asarray(v).reshape(-1))
    return times, {k: np.stack(v) for k, v in vectors.items()}


def choices(model_dir: Path, cache: Path, precision: str, queries: list[dict],
            hardware_texts: list[str]) -> list[dict]:
    """Select answers for each (known question, first-seen hardware text) pair, with the
    loaded model embedding new texts in `precision`, from its own copy of the cache."""
    from metainf.selector.artifact import load_model
    from metainf.selector.query import HardwareOption, SelectQuery
    from metainf.selector.selection import select

    model = load_model(model_dir)
    model.featurizer.embedder_.cache_dir = cache
    model.featurizer.embedder_.precision = precision
    out = []
    for k, text in enumerate(hardware_texts):
        q = queries[k % len(queries)]
        sel = select(model, SelectQuery(model=q["model"], workload=json.dumps(q["workload"]),
                                         hardware=(HardwareOption(text=text),
                                                   HardwareOption(name=q["hardware"]))))
        out.append({"method": sel.method, "hardware": sel.hardware,
                    "order": [(c.method, c.hardware) for c in sel.candidates],
                    "predicted": [c.predicted for c in sel.candidates],
                    "nearest": sel.nearest_known_hardware.get(text)})
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure each backend on the same texts; print latency, cosine and Select changes."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--texts", type=int, default=60, help="first-seen hardware texts")
    p.add_argument("--rounds", type=int, default=2, help="timed passes over the texts")
    p.add_argument("--selects", type=int, default=40,
                   help="first-seen Selects compared between float32 and serving embeddings")
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp folder)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    benchlib.setup_logging(args.verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workdir = benchlib.run_workdir(args.workdir, "bench-embeddings")
    print(*benchlib.header_lines(), sep="\n")

    import torch

    from metainf.selector.embeddings import Embedder, OpenVinoTransformer, native_bf16

    torch.set_num_threads(1)  # as the coordinator serves
    embedder = Embedder(cache_dir=workdir / "emb")
    st = embedder._load_model()
    forwards: dict[str, Callable] = {"torch-fp32": lambda t: embedder._embed_one(st, t)}
    precisions = ("f32", "bf16") if native_bf16() else ("f32",)
    if native_bf16():  # the torch fallback of a serving Embedder on this CPU
        st_bf16 = embedder._load_model("bfloat16")
        forwards["torch-bf16"] = lambda t: embedder._embed_one(st_bf16, t, "bfloat16")
    try:
        for precision in precisions:
            t0 = time.perf_counter()
            ov = OpenVinoTransformer(st, embedder.model_id, workdir / "emb" / "openvino",
                                     precision)
            print(f"OpenVINO {precision}: converted (once) and compiled in "
                  f"{time.perf_counter() - t0:.1f} s (later loads read the IR: see "
                  f"selector/embeddings.py)")

            def openvino(text: str, ov=ov) -> np.ndarray:
                features = st.preprocess([text])
                with torch.inference_mode():
                    out = ov.embed(st, features)
                return torch.nn.functional.normalize(out.float(), dim=1).numpy()
            forwards["openvino-fp32" if precision == "f32" else "openvino-bf16"] = openvino
    except Exception as exc:
        print(f"OpenVINO not measured: {exc}")
    forwards.update(onnx_runtime_forwards(st, workdir))
    texts = texts_to_embed(args.texts)
    tokens = [int(st.preprocess([t])["input_ids"].shape[1]) for t in texts]
    print(f"texts: {len(texts)} hardware descriptions ({args.texts} first-seen, the rest the "
          f"catalog's), tokens p50 {np.median(tokens):.0f}, max {max(tokens)}; one text at a "
          f"time, one thread, {args.rounds} interleaved rounds")
    times, vectors = measure(forwards, texts, args.rounds)
    base = np.median(times["torch-fp32"])
    for name in forwards:
        cos = np.sum(vectors[name] * vectors["torch-fp32"], axis=1)
        ok = cos.min() >= MIN_COSINE
        print(f"{name}: p50 {1e3 * np.median(times[name]):.2f} ms, p90 "
              f"{1e3 * benchlib.pct(times[name], 90):.2f} ms ({base / np.median(times[name]):.2f}x "
              f"torch); cosine to torch float32 min {cos.min():.6f}, mean {cos.mean():.6f} "
              f"({'within' if ok else 'BELOW'} {MIN_COSINE})")

    if args.selects > 0 and "openvino-fp32" in forwards:
        model_dir = workdir / "model"
        t = bench_select._train_small_model(model_dir, workdir)
        queries = bench_select.known_queries(model_dir)
        hw = [bench_select.first_seen_text(7, k, "sel/") for k in range(args.selects)]
        trained_cache = Path(os.environ.get("METAINF_EMBEDDING_CACHE", "") or
                             Path("~/.cache/metainf/embeddings").expanduser())
        runs = {}
        for precision in ("float32", "bfloat16"):
            cache = workdir / f"cache-{precision}"
            if (trained_cache / "embeddings.sqlite").exists():
                shutil.copytree(trained_cache, cache, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("openvino"))
            runs[precision] = choices(model_dir, cache, precision, queries, hw)
        a, b = runs["float32"], runs["bfloat16"]
        changed = sum(x["method"] != y["method"] or x["hardware"] != y["hardware"]
                      for x, y in zip(a, b, strict=True))
        order = sum(x["order"] != y["order"] for x, y in zip(a, b, strict=True))
        nearest = sum(x["nearest"] != y["nearest"] for x, y in zip(a, b, strict=True))
        moved = max((abs(p / q - 1) for x, y in zip(a, b, strict=True)
                     for p, q in zip(y["predicted"], x["predicted"], strict=True)), default=0.0)
        print(f"Select on make_synthetic_table's model (trained in {t:.0f} s), {len(hw)} "
              f"first-seen hardware texts beside a known one, serving embeddings "
              f"({Embedder(precision='bfloat16').variant}) vs float32: choice changed "
              f"{changed}, candidate order changed {order}, nearest known hardware changed "
              f"{nearest}; predicted values moved by at most {100 * moved:.3f} %")
    print(benchlib.load_line())
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
