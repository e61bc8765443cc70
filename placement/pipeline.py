"""A real block pipeline on local processes, to check the performance model against a clock.

Each server is a process holding a catalog model's decoder blocks (random weights, the
same seeded weights in every process) that runs, on request, a range of them with
PyTorch on CPU, keeping each session's KV cache, and serves it over gRPC (a generic
handler with raw bytes: float32 hidden states, no proto). A link's delay is injected
by the server sleeping before it answers (the whole round trip of that client-server
link). The client walks a route hop by hop, as PETALS' client does: prefill with l_in
tokens, then one token per step. The prediction uses the same performance model as
the planners, fed with what the farm would measure: τ and τᴵ from a block timing in
each server process, and each link's RTT from an empty echo call.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import struct
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import numpy as np

from metainf.blocks import measure, torch_block

from .perf import Hop
from .shapes import ModelShape, load_shape

SERVICE = "metainf.placement.Pipeline"
HEADER = struct.Struct("<iiii")
"""session id, first block, one past the last block, number of tokens."""


def _torch_blocks(shape: ModelShape, seed: int) -> list[Any]:
    """The model's decoder blocks (metainf.blocks' block), seeded random weights."""
    return [torch_block(shape, seed * 1000 + b) for b in range(shape.num_blocks)]


def _block_timing(blocks: list[Any], shape: ModelShape, l_in: int, repeats: int
                  ) -> tuple[float, float]:
    """(τ, τᴵ): median seconds of one block for a decode step and for an l_in prefill."""
    return measure(blocks[0], shape.d_model, l_in, repeats)


def _serve(model: str, seed: int, l_in: int, conn: Any) -> None:
    """A server process: blocks, a block timing, a gRPC service; runs until told to stop."""
    import grpc
    import torch

    torch.set_num_threads(1)
    shape = load_shape(model)
    blocks = _torch_blocks(shape, seed)
    tau, tau_prefill = _block_timing(blocks, shape, l_in, repeats=20)
    caches: dict[tuple[int, int], list[Any]] = {}
    delay = {"s": 0.0}

    def step(request: bytes, context: Any) -> bytes:
        """Run blocks first..last-1 on the tokens, keeping the session's caches."""
        session, first, last, n = HEADER.unpack_from(request)
        x = torch.frombuffer(bytearray(request[HEADER.size:]), dtype=torch.float32)
        x = x.view(n, shape.d_model)
        with torch.inference_mode():
            for b in range(first, last):
                x, caches[(session, b)] = blocks[b](x, caches.get((session, b)))
        time.sleep(delay["s"])
        return x.contiguous().numpy().tobytes()

    def echo(request: bytes, context: Any) -> bytes:
        """Answer after the link's delay, with nothing."""
        time.sleep(delay["s"])
        return b""

    def configure(request: bytes, context: Any) -> bytes:
        """Set the injected delay (a float64 of seconds) and drop all caches."""
        delay["s"] = struct.unpack("<d", request)[0]
        caches.clear()
        return b""

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Step": grpc.unary_unary_rpc_method_handler(step),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Configure": grpc.unary_unary_rpc_method_handler(configure),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send((port, tau, tau_prefill))
    conn.recv()  # any message: stop
    server.stop(grace=0)


@dataclass(frozen=True)
class ServerHandle:
    """A running server process: its address and its block timing."""

    port: int
    tau_s: float
    tau_prefill_s: float


@dataclass(frozen=True)
class Measurement:
    """Measured and predicted time per token of one route under one delay setting."""

    route: tuple[Hop, ...]
    delays_s: tuple[float, ...]
    measured_s_per_token: float
    predicted_s_per_token: float

    @property
    def error(self) -> float:
        """Relative error of the prediction (predicted / measured - 1)."""
        return self.predicted_s_per_token / self.measured_s_per_token - 1.0


class Pipeline:
    """A few local block servers and a client that walks routes over them."""

    def __init__(self, model: str = "llama-tiny", servers: int = 3, seed: int = 0,
                 l_in: int = 16) -> None:
        import grpc

        self.shape = load_shape(model)
        self.l_in = l_in
        ctx = mp.get_context("spawn")
        self._procs, self._conns = [], []
        for _ in range(servers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(model, seed, l_in, child), daemon=True)
            proc.start()
            self._procs.append(proc)
            self._conns.append(parent)
        self.handles = []
        for conn in self._conns:
            if not conn.poll(120):
                self.close()
                raise RuntimeError("a block server did not start within 120 s")
            self.handles.append(ServerHandle(*conn.recv()))
        self._channels = [grpc.insecure_channel(f"127.0.0.1:{h.port}") for h in self.handles]
        self._step = [c.unary_unary(f"/{SERVICE}/Step") for c in self._channels]
        self._echo = [c.unary_unary(f"/{SERVICE}/Echo") for c in self._channels]
        self._configure = [c.unary_unary(f"/{SERVICE}/Configure") for c in self._channels]
        self._session = 0

    def close(self) -> None:
        """Stop the server processes."""
        for conn in self._conns:
            try:
                conn.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> Pipeline:
        """Use as a context manager: servers stop on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the servers."""
        self.close()

    def set_delays(self, delays_s: Sequence[float]) -> None:
        """Inject each server's link delay (seconds, the whole round trip)."""
        for call, d in zip(self._configure, delays_s):
            call(struct.pack("<d", d), timeout=30)

    def echo_rtt(self, server: int, repeats: int = 15) -> float:
        """Median seconds of a hop that runs no block: the link's RTT at the application level.

        The call carries one token's hidden state through the same path as a real hop
        (serialisation, gRPC, the server's handler), so the RTT term of the model holds
        what a hop costs besides its blocks, as the anchor's 25 ms of serialisation does.
        """
        payload = HEADER.pack(-1, 0, 0, 1) + bytes(4 * self.shape.d_model)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self._step[server](payload, timeout=30)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def empty_rtt(self, server: int, repeats: int = 15) -> float:
        """Median seconds of an empty echo (network and injected delay only)."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self._echo[server](b"", timeout=30)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def run(self, route: Sequence[Hop], l_out: int, seed: int = 0) -> float:
        """Seconds per token of one request walking `route` (prefill, then l_out - 1 steps)."""
        self._session += 1
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.l_in, self.shape.d_model)).astype(np.float32)
        t0 = time.perf_counter()
        for token in range(l_out):
            for hop in route:
                n = x.shape[0]
                head = HEADER.pack(self._session, hop.start, hop.end, n)
                out = self._step[hop.server](head + x.tobytes(), timeout=60)
                x = np.frombuffer(out, dtype=np.float32).reshape(n, self.shape.d_model)
            if token == 0:
                x = x[-1:].copy()
        return (time.perf_counter() - t0) / l_out

    def predict(self, route: Sequence[Hop], rtts: Sequence[float], l_out: int) -> float:
        """The performance model's seconds per token, from echo RTTs and block timings."""
        prefill = sum(rtts[h.server] + h.blocks * self.handles[h.server].tau_prefill_s
                      for h in route)
        decode = sum(rtts[h.server] + h.blocks * self.handles[h.server].tau_s for h in route)
        return (prefill + (l_out - 1) * decode) / l_out

    def check(self, route: Sequence[Hop], delays_s: Sequence[float], l_out: int = 24
              ) -> Measurement:
        """Measure a route under injected delays and predict it; both seconds per token."""
        self.set_delays(delays_s)
        rtts = [self.echo_rtt(j) for j in range(len(self.handles))]
        self.run(route, 2)  # warm the channels and caches
        measured = self.run(route, l_out)
        return Measurement(tuple(route), tuple(delays_s), measured,
                           self.predict(route, rtts, l_out))


PLACEMENTS: dict[str, tuple[Hop, ...]] = {
    "2 hops 2+2": (Hop(0, 0, 2), Hop(1, 2, 4)),
    "3 hops 1+2+1": (Hop(0, 0, 1), Hop(1, 1, 3), Hop(2, 3, 4)),
    "2 hops 3+1": (Hop(2, 0, 3), Hop(0, 3, 4)),
}
"""Placements of llama-tiny's 4 blocks over 3 servers, as the routes that walk them."""

DELAYS: dict[str, tuple[float, ...]] = {
    "near (2/4/6 ms)": (0.002, 0.004, 0.006),
    "far (20/35/50 ms)": (0.020, 0.035, 0.050),
}
"""Per-link round-trip delays injected on servers 0, 1, 2."""
