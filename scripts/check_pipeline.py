"""The real pipeline check: measured against predicted time per token on local processes.

Starts 3 block servers (llama-tiny's blocks, random weights, PyTorch on CPU, gRPC with
raw bytes), then for each placement and each injected delay setting walks a request
over the route and compares its time per token with the performance model fed with
the servers' block timings and echo RTTs. Exits 1 when any pair is off by > 20 %.

    python scripts/check_pipeline.py            # about a minute on 2 cores
    python scripts/check_pipeline.py --l-out 48
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

from metainf.placement.pipeline import DELAYS, PLACEMENTS, Pipeline

TOLERANCE = 0.20


def main(argv: list[str] | None = None) -> int:
    """Run every placement under every delay setting; print the table; 1 if any is off."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l-out", type=int, default=24, help="tokens per request")
    parser.add_argument("--model", default="llama-tiny", help="catalog model (4+ blocks)")
    args = parser.parse_args(argv)
    for line in benchlib.header_lines():
        print(line)
    worst = 0.0
    with Pipeline(args.model) as pipe:
        taus = ", ".join(f"{h.tau_s * 1e3:.3f}/{h.tau_prefill_s * 1e3:.3f}" for h in pipe.handles)
        print(f"block timing per server, τ/τᴵ ms: {taus}")
        print(f"{'placement':<14} {'delays':<18} {'measured ms':>12} {'predicted ms':>13} "
              f"{'error':>7}")
        for pname, route in PLACEMENTS.items():
            for dname, delays in DELAYS.items():
                m = pipe.check(route, delays, l_out=args.l_out)
                worst = max(worst, abs(m.error))
                print(f"{pname:<14} {dname:<18} {m.measured_s_per_token * 1e3:>12.2f} "
                      f"{m.predicted_s_per_token * 1e3:>13.2f} {m.error:>+7.1%}")
    print(f"worst error {worst:.1%} (tolerance {TOLERANCE:.0%})")
    print(benchlib.load_line())
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
