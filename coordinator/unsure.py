"""Unsure -> measure: the coordinator's Select, which queues the cells that would settle an
unsure answer on the farm's own hardware.

A Select with ``measure_if_unsure`` is answered by the selector as any other (from its
answer cache when it can: the measuring part is never cached); then, when the answer's
confidence is below :attr:`UnsureConfig.below` and its hardware is a class with
registered workers, the top :attr:`UnsureConfig.top_k` feasible methods on that class for
the question's model, workload and batch size become a small campaign bound to that
class, and the answer carries its id beside the best current guess. One campaign per
question: asked again while it runs, the same id comes back; once it is done, the
answer says whether the serving model was trained after it (the retrained model then
answers from the measurement). Only roles that may submit campaigns may ask.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from metainf.coordinator import campaigns
from metainf.coordinator.auth import METHOD_ROLES, current_identity
from metainf.coordinator.status import campaign_progress
from metainf.coordinator.store import Store
from metainf.grid import GridError
from metainf.selector.service import SelectorServicer
from metainf.v1 import farm_pb2
from metainf.workloads import spec_fields

if TYPE_CHECKING:
    from metainf.selector.artifact import TrainedModel

log = logging.getLogger(__name__)

SUBMIT_RPC = "/metainf.v1.Coordinator/SubmitCampaign"


@dataclass(frozen=True)
class UnsureConfig:
    """When an answer counts as unsure and what is measured to settle it."""

    below: float = 0.6
    """Confidence under which a measure_if_unsure Select queues a campaign (the
    coordinator's --unsure-below)."""
    top_k: int = 3
    """Candidate methods measured: the best feasible ones on the class."""
    repetitions: int = 2
    """Measured repetitions of each queued cell."""


class MeasureError(ValueError):
    """A measure_if_unsure request the farm could never measure; says what to fix."""


def _farm_workload(store: Store, request: farm_pb2.SelectRequest) -> tuple[dict[str, Any], int]:
    """(runnable workload spec, batch size) of a request: its spec, or the spec a campaign
    stored under its workload label. MeasureError when it is neither (statistics only)."""
    try:
        workload = json.loads(request.workload_json)
    except ValueError:
        raise MeasureError("workload_json: not valid JSON") from None
    if not isinstance(workload, dict):
        raise MeasureError("workload_json: must be a JSON object")
    bs = workload.get("batch_size")
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise MeasureError(f"measure_if_unsure: workload_json needs an integer batch_size "
                           f">= 1 to measure at (got {bs!r})")
    if "dataset" in workload:
        return spec_fields(workload), bs
    label = workload.get("workload")
    if label is not None:
        for campaign in reversed(store.campaigns()):
            known = json.loads(campaign["meta_json"]).get("workloads", {})
            if label in known:
                return dict(known[label]["spec"]), bs
        raise MeasureError(f"measure_if_unsure: workload label {label!r} is in no campaign "
                           f"of this farm; give its spec (dataset, num_prompts, ...)")
    raise MeasureError("measure_if_unsure: the farm can only run a workload spec (dataset, "
                       "num_prompts, ...) or a farm workload label, not statistics")


def question_key(class_id: str, request: farm_pb2.SelectRequest, spec: dict[str, Any],
                 batch_size: int) -> str:
    """The identity of a question on one hardware class: model, workload, batch size,
    candidate methods and objective (budget and risk do not change what to measure)."""
    blob = json.dumps([class_id, request.model.strip(), spec, batch_size,
                       sorted(request.methods), request.objective or "runtime"],
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class MeasuringSelector(SelectorServicer):
    """The coordinator's Selector service: Select as the selector answers it, plus
    unsure -> measure over the coordinator's store."""

    def __init__(self, store: Store, unsure: UnsureConfig = UnsureConfig(), **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.unsure = unsure
        self._queue_lock = threading.Lock()

    def current_model(self) -> TrainedModel | None:
        """The model serving Select now (reloaded first when a newer version is there)."""
        return self._current()

    def Select(self, request, context):
        """Answer; with measure_if_unsure, queue what would settle an unsure answer."""
        if not request.measure_if_unsure:
            return super().Select(request, context)
        role = current_identity.get().role
        allowed = METHOD_ROLES[SUBMIT_RPC]
        if role not in allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"measure_if_unsure: role {role} may not set it: it queues a "
                          f"campaign, which only role(s) {', '.join(allowed)} may submit")
        if not request.model.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "measure_if_unsure: needs a model name (model), not model_text: "
                          "the farm can only run a model it can load")
        try:
            spec, batch_size = _farm_workload(self.store, request)
        except MeasureError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        plain = farm_pb2.SelectRequest()
        plain.CopyFrom(request)
        plain.measure_if_unsure = False  # the selector's answer is cached as a plain one's
        answer = super().Select(plain, context)
        response = farm_pb2.SelectResponse()
        response.CopyFrom(answer)  # never change the cached answer itself
        try:
            campaign_id, note = self._measure(request, response, spec, batch_size)
        except GridError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"measure_if_unsure: {exc}")
        response.measure_campaign_id = campaign_id
        response.measure_note = note
        return response

    def _registered(self) -> dict[str, str]:
        """Label -> class id of every hardware class with a worker not quarantined."""
        return {w["hardware_label"]: w["class_id"] for w in self.store.workers()
                if not w["quarantined"]}

    def _measure(self, request, response: farm_pb2.SelectResponse, spec: dict[str, Any],
                 batch_size: int) -> tuple[str, str]:
        """(campaign id, note) for an answered measure_if_unsure Select."""
        registered = self._registered()
        on_farm = [c for c in response.candidates if c.feasible and c.hardware in registered]
        if not on_farm:
            asked = response.hardware or ", ".join(h.name or h.text for h in request.hardware)
            return "", (f"not on the farm: no feasible candidate on a hardware class with a "
                        f"registered worker ({asked or 'none asked'}); nothing queued")
        label = (response.hardware if response.hardware in registered
                 else on_farm[0].hardware)
        class_id = registered[label]
        question = question_key(class_id, request, spec, batch_size)
        with self._queue_lock:
            earlier = self.store.question_campaign(question)
            if earlier is not None:
                return earlier, self._earlier_note(earlier)
            if not response.HasField("confidence"):
                return "", ("no confidence: the model has no calibration or chose nothing; "
                            "nothing queued")
            if response.confidence >= self.unsure.below:
                return "", (f"confident: confidence {response.confidence:.2f} >= "
                            f"{self.unsure.below:g}; nothing queued")
            methods = list(dict.fromkeys(c.method for c in response.candidates
                                         if c.feasible and c.hardware == label))
            methods = methods[:self.unsure.top_k]
            grid = {"name": f"unsure-{question[:8]}", "models": [request.model.strip()],
                    "methods": methods, "workloads": [{**spec, "batch_size": batch_size}],
                    "hardware": [class_id], "repetitions": self.unsure.repetitions}
            campaign_id, n_cells = campaigns.create(self.store, grid)
            self.store.add_question(question, campaign_id, class_id)
        log.info("unsure -> measure: confidence %.2f < %g, queued campaign %s (%d cells: %s "
                 "on %s)", response.confidence, self.unsure.below, campaign_id, n_cells,
                 ", ".join(methods), label)
        return campaign_id, (f"queued: confidence {response.confidence:.2f} < "
                             f"{self.unsure.below:g}; measuring {', '.join(methods)} on "
                             f"{label} in campaign {campaign_id}")

    def _earlier_note(self, campaign_id: str) -> str:
        """What became of the campaign queued earlier for the same question."""
        p = campaign_progress(self.store, campaign_id)
        if p["state"] != "done":
            return (f"pending: campaign {campaign_id} is measuring this question "
                    f"({p['finished']}/{p['total_cells']} cells final)")
        finished = self.store.query("SELECT MAX(finished_at) AS t FROM cells WHERE "
                                    "campaign_id=?", (campaign_id,))[0]["t"] or 0.0
        model = self._current()
        trained = (model.info.get("created_at") or 0.0) if model is not None else 0.0
        if trained >= finished:
            return (f"measured: campaign {campaign_id} is done and model {model.version} "
                    f"was trained after it")
        return (f"measured: campaign {campaign_id} is done; the answer comes from the "
                f"measurement once the model is retrained on it")
