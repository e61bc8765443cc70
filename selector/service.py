"""The Selector gRPC service: Select answers from the newest trained model, ReloadModel."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from metainf.selector.artifact import (
    ModelNotFoundError,
    TrainedModel,
    check_version_name,
    how_to_train,
    latest_version,
    list_versions,
    load_model,
    promote,
)
from metainf.selector.query import HardwareOption, SelectionError, SelectQuery
from metainf.selector.selection import Selection, select
from metainf.v1 import farm_pb2, farm_pb2_grpc

log = logging.getLogger(__name__)

FarmHardware = Callable[[], list[tuple[str, dict, float]]]
"""Lists the farm's hardware classes as (label, profile dict, price per hour)."""

OnAnswer = Callable[[dict], None]
"""Told a summary of every Select answer (see answer_summary), e.g. for a dashboard."""

_PONG = farm_pb2.PingResponse()

RELOAD_CHECK_S = 2.0
"""How often a Select checks the model directory for a newer version."""


ANSWER_CACHE_ENTRIES = 4096
"""Select answers the serving model remembers (each a response of a few KB)."""


def normalised_request(request: farm_pb2.SelectRequest) -> tuple[bytes, Any] | None:
    """(key, parsed workload) of a request: the same question asked with its workload
    JSON spaced or ordered differently, or with the defaults of objective and risk left
    out, gets the same key. None for a request whose workload is not a JSON object (its
    answer is an error, computed each time) or that asks for every farm hardware class
    (its options change as workers register)."""
    if request.all_farm_hardware:
        return None
    try:
        workload = json.loads(request.workload_json)
    except ValueError:
        return None
    if not isinstance(workload, dict):
        return None
    canonical = farm_pb2.SelectRequest()
    canonical.CopyFrom(request)
    try:
        canonical.workload_json = json.dumps(workload, sort_keys=True, separators=(",", ":"))
    except ValueError:  # NaN and the like: let the selector say what is wrong
        return None
    canonical.objective = request.objective or "runtime"
    canonical.risk = request.risk or "upper"
    return canonical.SerializeToString(deterministic=True), workload


class AnswerCache:
    """Select answers of one model version, by request: its exact bytes, or its
    normalised form (normalised_request). Reset whole when another version starts
    serving, so no answer of an old model is ever served; bounded, oldest out first."""

    def __init__(self, entries: int = ANSWER_CACHE_ENTRIES):
        self.entries = entries
        self._state: tuple[str | None, dict[bytes, Any]] = (None, {})
        self._lock = threading.Lock()

    def reset(self, version: str | None) -> None:
        """Forget every answer; from now on keep those of `version` only."""
        with self._lock:
            self._state = (version, {})

    def get(self, version: str, key: bytes) -> Any:
        """The answer kept for key under version, or None."""
        kept, answers = self._state  # one atomic read: a version and its own answers
        return answers.get(key) if kept == version else None

    def put(self, version: str, keys: tuple[bytes, ...], answer: Any) -> None:
        """Keep an answer under keys, unless another version serves now."""
        if self.entries <= 0:
            return
        with self._lock:
            kept, answers = self._state
            if version != kept:
                return
            while answers and len(answers) + len(keys) > self.entries:
                del answers[next(iter(answers))]
            for key in keys:
                answers[key] = answer

    def __len__(self) -> int:
        """Keys kept (an answer is kept under its request's bytes and normalised form)."""
        return len(self._state[1])


def request_to_query(request: farm_pb2.SelectRequest,
                     farm_hardware: FarmHardware = list,
                     workload: Any = None) -> SelectQuery:
    """A SelectQuery from a SelectRequest (farm hardware added when asked); `workload`
    is the request's workload JSON already parsed, when it was."""
    options = [HardwareOption(name=h.name, text=h.text,
                              price_per_hour=h.price_per_hour if h.HasField("price_per_hour")
                              else None,
                              count=h.count if h.HasField("count") else None)
               for h in request.hardware]
    if request.all_farm_hardware:
        listed = list(farm_hardware())
        if not listed:
            raise SelectionError("hardware", "all_farm_hardware: no hardware class has "
                                             "registered with the farm yet")
        given = {o.label for o in options}
        for label, profile, price in listed:
            if label not in given:
                options.append(HardwareOption(name=label, price_per_hour=price or None,
                                              profile=profile))
    return SelectQuery(
        model=request.model, model_text=request.model_text, hardware=tuple(options),
        workload=request.workload_json if workload is None else workload,
        methods=tuple(request.methods),
        budget=request.budget if request.HasField("budget") else None,
        objective=request.objective or "runtime", risk=request.risk or "upper",
    )


def _num(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _interval(interval: tuple[float, float] | None) -> farm_pb2.Interval | None:
    return None if interval is None else farm_pb2.Interval(low=_num(interval[0]),
                                                            high=_num(interval[1]))


def selection_to_response(sel: Selection) -> farm_pb2.SelectResponse:
    """The SelectResponse of a Selection (an unknown cost is sent as 0)."""
    return farm_pb2.SelectResponse(
        method=sel.method, hardware=sel.hardware, feasible=sel.feasible,
        model_version=sel.model_version,
        candidates=[farm_pb2.Candidate(method=c.method, hardware=c.hardware,
                                       predicted=_num(c.predicted), cost=_num(c.cost),
                                       feasible=c.feasible, reason=c.reason, count=c.count,
                                       interval=_interval(c.interval))
                    for c in sel.candidates],
        nearest_known_hardware=sel.nearest_known_hardware, metric=sel.metric,
        lower_is_better=sel.lower_is_better, message=sel.message,
        memory_margin=sel.memory_margin or 0.0,
        confidence=sel.confidence, out_of_distribution=sel.out_of_distribution,
        ood_axes=sel.ood_axes,
        distances=[farm_pb2.AxisDistance(**d) for d in sel.distances],
    )


def answer_summary(request: farm_pb2.SelectRequest, sel: Selection) -> dict:
    """What a dashboard lists of one answer: the question in short, the choice, how far
    to trust it."""
    asked = [h.name or h.text for h in request.hardware]
    if request.all_farm_hardware:
        asked.append("all farm hardware")
    return {"model": request.model or request.model_text, "hardware": asked,
            "method": sel.method, "chosen_hardware": sel.hardware, "feasible": sel.feasible,
            "confidence": sel.confidence, "out_of_distribution": sel.out_of_distribution,
            "ood_axes": list(sel.ood_axes), "model_version": sel.model_version}


SERVING_TORCH_THREADS = 1
"""Intra-op threads of the sentence-transformer while serving Select.

One Select embeds one short text; measured side by side on a busy 2-core machine
(workers' engines on every core), 2 threads took ~1.9 s wall and ~0.9 s CPU per
embedding (OpenMP spin-waits), one thread ~80 ms wall and ~43 ms CPU.
"""


def _limit_torch_threads() -> None:
    """Run torch on SERVING_TORCH_THREADS threads in this (serving) process."""
    try:
        import torch
    except ImportError:
        return
    if torch.get_num_threads() != SERVING_TORCH_THREADS:
        torch.set_num_threads(SERVING_TORCH_THREADS)


def _warm_up(model: TrainedModel) -> None:
    """Load the sentence-transformer: the first unseen text is then fast."""
    try:
        _limit_torch_threads()
        model.nearest_embedder().preload()
    except Exception as exc:
        log.warning("embedding model warm-up failed: %s", exc)


def _scores(scores: dict | None) -> farm_pb2.HeldOutScores | None:
    if not scores:
        return None
    return farm_pb2.HeldOutScores(n_tasks=int(scores.get("n_tasks") or 0),
                                  **{k: _num(float(scores.get(k, math.nan)))
                                     for k in ("regret", "level_mdape", "accuracy")})


def version_to_message(v: dict) -> farm_pb2.ModelVersion:
    """A ModelVersion message of one entry of artifact.list_versions (NaN sent as 0)."""
    msg = farm_pb2.ModelVersion(version=v["version"], trained_at=v["trained_at"] or 0.0,
                                n_tasks=v["n_tasks"] or 0, n_pairs=v["n_pairs"] or 0,
                                serving=v["serving"], error=v["error"])
    r = v.get("retrain")
    if r:
        msg.retrain.CopyFrom(farm_pb2.RetrainRecord(
            trigger=r.get("trigger", ""), rows=int(r.get("rows", 0)),
            tasks=int(r.get("tasks", 0)), heldout=_scores(r.get("heldout")),
            serving_heldout=_scores(r.get("serving_heldout")),
            serving_version=r.get("serving_version") or "",
            promoted=bool(r.get("promoted")), reason=r.get("reason", "")))
    return msg


class SelectorServicer(farm_pb2_grpc.SelectorServicer):
    """Answers Select from the newest model in model_dir; reloads on request or change."""

    def __init__(self, model_dir: Path | None, farm_hardware: FarmHardware = list,
                 warm_up: bool = True, on_answer: OnAnswer | None = None,
                 answer_cache: int = ANSWER_CACHE_ENTRIES):
        self.model_dir = Path(model_dir) if model_dir else None
        self.farm_hardware = farm_hardware
        self.on_answer = on_answer
        self.answers = AnswerCache(answer_cache)
        self.warm_up = warm_up
        self._lock = threading.Lock()
        self._model: TrainedModel | None = None
        self._checked = 0.0
        self._unreadable: tuple[str, int | None] | None = None
        if self.model_dir is not None:
            try:
                self.reload()
            except ModelNotFoundError:
                log.info("no trained model in %s yet; Select answers FAILED_PRECONDITION "
                         "until one is trained", self.model_dir)

    @property
    def model(self) -> TrainedModel | None:
        """The model answering Select now (None before one is trained)."""
        return self._model

    def serving_summary(self) -> dict[str, Any] | None:
        """What serves Select now, for a dashboard: version, when it was trained, on how
        many tasks, pairs and rows, its held-out scores (None before a model serves)."""
        model = self._model
        if model is None:
            return None
        retrain = model.info.get("retrain") or {}
        return {"version": model.version, "trained_at": model.info.get("created_at"),
                "n_tasks": model.info.get("n_tasks"), "n_pairs": model.info.get("n_pairs"),
                "rows": retrain.get("rows"), "heldout": retrain.get("heldout"),
                "trigger": retrain.get("trigger", ""), "reason": retrain.get("reason", "")}

    def reload(self, wait_warm: bool = False) -> TrainedModel:
        """Load the newest model of model_dir (raises ModelNotFoundError when none); its
        embedding model warms up in the background, or before returning with wait_warm."""
        if self.model_dir is None:
            raise ModelNotFoundError("the coordinator was started without --model-dir: "
                                     + how_to_train())
        return self._install(load_model(self.model_dir), wait_warm)

    def _install(self, model: TrainedModel, wait_warm: bool = False) -> TrainedModel:
        """Serve a loaded model from now on: answers of the previous one are forgotten."""
        with self._lock:
            self._model = model
            self.answers.reset(model.version)
            self._checked = time.monotonic()
        log.info("selector model %s loaded from %s", model.version, model.path)
        if self.warm_up and wait_warm:
            _warm_up(model)
        elif self.warm_up:
            threading.Thread(target=_warm_up, args=(model,), name="selector-warm-up",
                             daemon=True).start()
        return model

    def _current(self) -> TrainedModel | None:
        """The model, reloaded first when model_dir names a newer version."""
        if self.model_dir is None:
            return self._model
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK_S:
            self._checked = now
            newest = latest_version(self.model_dir)
            current = self._model.version if self._model else None
            stamp = ((newest, _manifest_mtime(self.model_dir, newest))
                     if newest and newest != current else None)
            if stamp is not None and stamp != self._unreadable:
                try:
                    return self.reload()
                except (ModelNotFoundError, OSError, ValueError) as exc:
                    # Said once: the same folder is tried again only once it changes.
                    self._unreadable = stamp
                    log.warning("could not load model %s: %s (tried again when it changes)",
                                newest, exc)
        return self._model

    def Select(self, request, context):
        """Score every candidate (method, hardware) and return the best within budget.

        A question asked before of the same model is answered from the answer cache: its
        exact request bytes first, then its normalised form.
        """
        model = self._current()
        if model is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, how_to_train(self.model_dir))
        version = model.version
        raw = request.SerializeToString(deterministic=True)
        hit = self.answers.get(version, raw)
        if hit is None:
            normal = normalised_request(request)
            if normal is not None:
                hit = self.answers.get(version, normal[0])
                if hit is not None:
                    self.answers.put(version, (raw,), hit)
            if hit is None:
                hit = self._answer(model, request, context, raw, normal)
        response, summary = hit
        if self.on_answer is not None:
            self.on_answer(summary)
        return response

    def _answer(self, model: TrainedModel, request, context, raw: bytes,
                normal: tuple[bytes, Any] | None) -> tuple[farm_pb2.SelectResponse, dict]:
        """Compute an answer (and keep it, under the request's bytes and normalised form,
        when it has one)."""
        try:
            query = request_to_query(request, self.farm_hardware,
                                     normal[1] if normal is not None else None)
            sel = select(model, query)
        except SelectionError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:
            log.exception("Select failed")
            context.abort(grpc.StatusCode.INTERNAL, f"select failed: {exc}")
        answer = (selection_to_response(sel), answer_summary(request, sel))
        if normal is not None:
            self.answers.put(model.version, (raw, normal[0]), answer)
        return answer

    def Ping(self, request, context):
        """Answer at once: the floor of a Select through the same interceptors."""
        return _PONG

    def ReloadModel(self, request, context):
        """Load the newest trained model from the model directory; answer once it is warm
        (its embedding model loaded), so the next Select runs at full speed."""
        try:
            model = self.reload(wait_warm=True)
        except ModelNotFoundError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except (OSError, ValueError) as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"cannot load the model: {exc}")
        return farm_pb2.ReloadModelResponse(model_version=model.version)

    def ListModels(self, request, context):
        """The versions kept in the model directory and the one serving."""
        if self.model_dir is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "the coordinator was started without --model-dir")
        try:
            versions = list_versions(self.model_dir) if self.model_dir.is_dir() else []
        except OSError as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"cannot list {self.model_dir}: {exc}")
        current = self._current()
        return farm_pb2.ListModelsResponse(
            versions=[version_to_message(v) for v in versions],
            serving_version=current.version if current else "")

    def PromoteModel(self, request, context):
        """Point LATEST at a kept version and serve it now (answer cache reset)."""
        if self.model_dir is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "the coordinator was started without --model-dir")
        problem = check_version_name(request.version)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        folder = self.model_dir / request.version
        if not (folder / "manifest.json").is_file():
            try:
                promote(self.model_dir, request.version)  # raises, listing the versions kept
            except ModelNotFoundError as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        try:  # load before pointing LATEST at it: a version that cannot serve is refused
            model = load_model(folder)
        except (ModelNotFoundError, OSError, ValueError, KeyError) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"version: {request.version} cannot be loaded: {exc}")
        promote(self.model_dir, request.version)
        self._install(model)
        log.info("model %s promoted on request", model.version)
        return farm_pb2.PromoteModelResponse(model_version=model.version)


def _manifest_mtime(model_dir: Path, version: str) -> int | None:
    """When a version's manifest last changed (ns), None when it cannot be read."""
    try:
        return (model_dir / version / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None
