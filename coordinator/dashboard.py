"""A read-only HTTP dashboard of the farm (workers, campaigns, failures, Select, the latest
placement plan) plus /metrics."""

from __future__ import annotations

import hmac
import html
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from metainf.coordinator.farm_metrics import FarmMetrics
from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.status import (
    CELL_STATES,
    campaign_progress,
    cells_by_state,
    recent_failures,
    worker_states,
)
from metainf.coordinator.store import Store

log = logging.getLogger(__name__)

REFRESH_S = 5
"""Seconds between the page's own reloads."""

MAX_CAMPAIGNS = 25
MAX_FAILURES = 20
MAX_ERROR_CHARS = 300

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;background:#fff;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}.muted{color:#777}.num{text-align:right}
.bar{width:12rem;height:.8rem;background:#e5e5e5;border-radius:.4rem;overflow:hidden;
display:inline-block;vertical-align:middle;margin-right:.5rem}
.fill{height:100%;background:#3a7bd5}.alive{color:#1a7f37}.lost{color:#b42318}
.quarantined{color:#9a6700}.err{font-family:monospace;font-size:.8rem;white-space:pre-wrap;
max-width:40rem}
"""


def _e(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _duration(seconds: float) -> str:
    if seconds < 0:
        return "unknown"
    if seconds == 0:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f} ms"


def _table(headers: list[str], rows: list[list[str]], table_id: str, empty: str) -> str:
    """A table whose cells are already-escaped HTML fragments."""
    if not rows:
        return f'<p class="muted" id="{table_id}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _workers_section(workers: list[dict[str, Any]]) -> str:
    rows = [[_e(w["name"]), _e(w["hardware_label"]),
             f'<span class="{_e(w["state"])}">{_e(w["state"])}</span>',
             _e(w["current_cell"] or "-"), _e(_age(w["heartbeat_age_s"]))] for w in workers]
    return _table(["worker", "hardware", "state", "current cell", "last heartbeat"], rows,
                  "workers", "No worker has registered yet.")


def _campaigns_section(campaigns: list[dict[str, Any]]) -> str:
    rows = []
    for c in campaigns:
        total, finished = c["total_cells"], c["finished"]
        share = finished / total if total else 0.0
        bar = (f'<span class="bar"><span class="fill" style="width:{share * 100:.1f}%">'
               f'</span></span><span class="progress">{finished}/{total}</span>'
               f' <span class="muted">({share * 100:.0f} %)</span>')
        counts = ", ".join(f"{s} {c['cells'][s]}" for s in CELL_STATES if c["cells"].get(s))
        rows.append([_e(c["name"] or "-"), _e(c["campaign_id"]), _e(c["state"]), bar,
                     _e(counts or "no hardware bound yet"),
                     _e(", ".join(c["hardware_classes"]) or "-"), _e(_duration(c["eta_s"]))])
    return _table(["campaign", "id", "state", "progress (final / total cells)", "cells",
                   "hardware", "ETA"], rows, "campaigns", "No campaign submitted yet.")


def _failures_section(failures: list[dict[str, Any]]) -> str:
    rows = []
    for f in failures:
        error = f["error"] or ""
        if len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + " ..."
        status = f["status"] if f["status"] in ("failed", "oom", "timeout") else \
            f"retrying ({f['status']}, {f['attempts']} failed attempt(s))"
        rows.append([_e(f["cell_id"]), _e(f["method"]), _e(f["model"]), _e(f["workload"]),
                     _e(f["batch_size"]), _e(f["hardware"]), _e(status),
                     f'<div class="err">{_e(error)}</div>'])
    return _table(["cell", "method", "model", "workload", "batch", "hardware", "status",
                   "error"], rows, "failures", "No failures.")


def _select_section(metrics: FarmMetrics, now: float) -> str:
    """Select call counts and latency, then the latest answers and how far to trust them."""
    s = metrics.select_summary()
    errors = sum(v for (m, _), v in metrics.rpc_error_counts().items()
                 if m.endswith("Selector/Select"))
    rows = [[_e(s["count"]), _e(f"{errors:.0f}"), _e(_ms(s["p50_s"])), _e(_ms(s["p99_s"])),
             _e(s["window"])]]
    traffic = _table(["Select calls answered", "Select errors", "latency p50", "latency p99",
                      "calls in the p50/p99 window"], rows, "select", "")
    answers = []
    for at, a in metrics.latest_answers():
        choice = (f"{a['method']} on {a['chosen_hardware']}" if a["method"]
                  else "nothing fits in memory")
        if a["method"] and not a["feasible"]:
            choice += " (over budget)"
        conf = "-" if a["confidence"] is None else f"{a['confidence']:.2f}"
        ood = (f'<span class="lost">yes: {_e(", ".join(a["ood_axes"]))}</span>'
               if a["out_of_distribution"] else "no")
        answers.append([_e(_age(now - at)), _e(a["model"]), _e(", ".join(a["hardware"])),
                        _e(choice), _e(conf), ood, _e(a["model_version"])])
    latest = _table(["when", "model", "hardware asked", "answer", "confidence",
                     "out of distribution", "model version"], answers, "select-answers",
                    "No Select answered yet.")
    return f"{traffic}<h3>Latest answers</h3>{latest}"


def _drift_section(drift: Any) -> str:
    """Per hardware class: the serving model's error on accepted results against its
    held-out error, flagged classes first."""
    if drift is None:
        return '<p class="muted" id="drift">Drift is not tracked by this coordinator.</p>'
    note = drift.note()
    if note:
        return f'<p class="muted" id="drift">{_e(note)}</p>'
    report = sorted(drift.report(), key=lambda d: (not d.flagged, d.label))
    rows = [[_e(d.label), _e(d.results), _e(f"{100 * d.mdape:.1f} %"),
             _e(f"{100 * d.held_out_mdape:.1f} %"),
             '<span class="lost">flagged: retrain</span>' if d.flagged else "ok",
             _e(", ".join(d.model_versions))] for d in report]
    margin = 100 * drift.config.margin
    table = _table(["hardware", "results", "error vs prediction (MdAPE)", "held-out MdAPE",
                    "drift", "model versions"], rows, "drift",
                   "No accepted result compared with a prediction yet.")
    return (f'{table}<p class="muted">A class is flagged when its MdAPE over its latest '
            f'{drift.config.window} results exceeds the held-out MdAPE by more than '
            f'{margin:g} points (--drift-margin).</p>')


def _model_section(metrics: FarmMetrics, now: float) -> str:
    """The model serving Select (when and on how much it was trained, its held-out scores)
    and the coordinator's latest retrainings."""
    m = metrics.serving_model()
    if not m:
        head = ('<p class="muted" id="model">No model serves Select yet: the coordinator '
                'trains one when a campaign finishes (with <code>--model-dir</code>).</p>')
    else:
        held = m.get("heldout") or {}
        scores = (f"regret {held['regret']:.4f}, level error {held['level_mdape']:.3f} on "
                  f"{held['n_tasks']} held-out task(s)" if held.get("n_tasks") else
                  "no held-out score (first version, or trained by hand)")
        rows = "-" if m.get("rows") is None else str(m["rows"])
        trained = _age(now - m["trained_at"]) if m.get("trained_at") else "-"
        head = _table(["version", "trained", "rows", "tasks", "held-out scores"],
                      [[_e(m["version"]), _e(trained), _e(rows), _e(m.get("n_tasks")),
                        _e(scores)]], "model", "")
    status = metrics.retrain_status() or {}
    runs = [[_e(_age(now - r["at"])), _e(r["trigger"]), _e(r["outcome"]),
             _e(r.get("version", "")), _e(r.get("reason", ""))]
            for r in status.get("history", [])]
    if status.get("running_since"):
        runs.insert(0, [_e(_age(now - status["running_since"])), _e(status["running_trigger"]),
                        "training", "", ""])
    if not status:
        return head
    return head + "<h3>Retraining</h3>" + _table(
        ["when", "trigger", "outcome", "version", "why"], runs, "retrains",
        "No retraining yet: one starts when a campaign finishes.")


def _plan_line(entry: dict[str, Any]) -> str:
    """One plan's headline: its algorithm, predicted time per token, or why it failed."""
    name = entry.get("algorithm", "?")
    if entry.get("join_orders"):
        name += f" (median of {entry['join_orders']} join orders)"
    if entry.get("status") == "failed":
        return f"{_e(name)}: failed: {_e(entry.get('error'))}"
    predicted = entry.get("predicted_s_per_token") or 0.0
    return f"{_e(name)}: {predicted:.4f} s/token predicted"


def _plan_section(plan: dict[str, Any] | None, now: float) -> str:
    """The latest plan Place made: servers and their blocks, routes, PETALS' beside it."""
    if not plan:
        return ('<p class="muted" id="plan">No plan yet: <code>metainf place --coordinator '
                'HOST:PORT --model NAME</code> makes one.</p>')
    chosen, petals = plan.get("plan", {}), plan.get("petals", {})
    held = {r["server"]: f"{r['first_block']}-{r['last_block']}"
            for r in chosen.get("ranges", [])}
    rows = [[_e(s["name"]), _e(f"{s['memory_gb']:.1f} GB"),
             _e(f"{s['tau_ms']:.3f} ms" + (" (estimated)" if s.get("tau_estimated") else "")),
             _e(held.get(s["name"], "-"))] for s in plan.get("servers", [])]
    routes = "".join(
        f"<li>{_e(r['client'])}: "
        + " &rarr; ".join(f"{_e(h['server'])} [{h['first_block']}-{h['last_block']}]"
                          for h in r["hops"])
        + f" ({r['predicted_s_per_token']:.4f} s/token)</li>" for r in chosen.get("routes", []))
    age = _age(now - plan["created_at"]) if plan.get("created_at") else ""
    return (f'<div id="plan"><p>{_e(plan.get("model"))} ({_e(plan.get("blocks"))} blocks) '
            f'over {len(plan.get("servers", []))} servers, planned {_e(age)}.<br>'
            f"{_plan_line(chosen)}; {_plan_line(petals)}.</p>"
            + _table(["server", "memory", "time per block per token", "blocks held"], rows,
                     "plan-servers", "No servers.")
            + (f"<ul>{routes}</ul>" if routes else "") + "</div>")


def render_page(store: Store, metrics: FarmMetrics, scheduler: SchedulerConfig,
                now: float | None = None) -> str:
    """The dashboard page: server-rendered HTML that reloads itself every REFRESH_S seconds."""
    now = time.time() if now is None else now
    workers = worker_states(store, scheduler, now)
    campaigns = [campaign_progress(store, c["campaign_id"])
                 for c in reversed(store.campaigns()[-MAX_CAMPAIGNS:])]
    failures = recent_failures(store, MAX_FAILURES)
    cells = cells_by_state(store)
    fleet = ", ".join(f"{sum(w['state'] == s for w in workers)} {s}"
                      for s in ("alive", "lost", "quarantined")
                      if any(w["state"] == s for w in workers)) or "none"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
    queue = ", ".join(f"{s} {n}" for s, n in cells.items() if n) or "empty"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MetaInf Farm</title><style>{STYLE}</style></head>
<body>
<h1>MetaInf Farm</h1>
<p class="muted">Updated {_e(stamp)}; this page reloads every {REFRESH_S} s.
Workers: {_e(fleet)}. Cells: {_e(queue)}.</p>
<h2>Workers</h2>
{_workers_section(workers)}
<h2>Campaigns</h2>
{_campaigns_section(campaigns)}
<h2>Recent failures</h2>
{_failures_section(failures)}
<h2>Select traffic</h2>
{_select_section(metrics, now)}
<h2>Serving model</h2>
{_model_section(metrics, now)}
<h2>Model drift</h2>
{_drift_section(metrics.drift)}
<h2>Latest placement plan</h2>
{_plan_section(store.latest_plan(), now)}
<p class="muted">Prometheus metrics: <code>/metrics</code>. Health: <code>/healthz</code>.</p>
</body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """Serves /, /metrics and /healthz; everything read-only."""

    server: _DashboardHTTPServer
    server_version = "metainf-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Access log to `logging` at debug level, without the query (it may hold a token)."""
        log.debug("%s %s %s", self.address_string(), self.command, urlsplit(self.path).path)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        tokens = self.server.tokens
        if not tokens:
            return True
        sent = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            sent = header[len("Bearer "):].strip()
        elif query.get("token"):
            sent = query["token"][0]
        found = False
        for token in tokens:  # constant time, whichever token matches
            found |= hmac.compare_digest(token.encode(), sent.encode())
        return found

    def do_GET(self) -> None:
        """Route a GET (and HEAD) request."""
        parts = urlsplit(self.path)
        if parts.path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            return
        if parts.path not in ("/", "/metrics"):
            self._send(HTTPStatus.NOT_FOUND, b"not found: try / or /metrics\n",
                       "text/plain; charset=utf-8")
            return
        if not self._authorised(parse_qs(parts.query)):
            self._send(HTTPStatus.UNAUTHORIZED,
                       b"missing or unknown token: send 'Authorization: Bearer TOKEN' or "
                       b"add ?token=TOKEN (a token of the coordinator's --token-file)\n",
                       "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"})
            return
        try:
            if parts.path == "/metrics":
                self._send(HTTPStatus.OK, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
            else:
                page = render_page(self.server.store, self.server.metrics, self.server.scheduler)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        except Exception:  # a broken page must not kill the server thread
            log.exception("dashboard: cannot render %s", parts.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error; see the coordinator "
                       b"log\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: use GET\n",
                   "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


class _DashboardHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries what the handler reads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Store, tokens: list[str],
                 metrics: FarmMetrics, scheduler: SchedulerConfig):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        self.scheduler = scheduler
        super().__init__(address, _Handler)


@dataclass
class DashboardServer:
    """A running dashboard: its HTTP server, thread and bound port."""

    httpd: _DashboardHTTPServer
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_dashboard(store: Store, host: str, port: int, tokens: dict | None,
                    metrics: FarmMetrics, scheduler: SchedulerConfig | None = None
                    ) -> DashboardServer:
    """Serve the dashboard, /metrics and /healthz on host:port (0 = any free port).

    `tokens` is the coordinator's token table (token -> identity, any role may read);
    when given, / and /metrics need ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``.
    /healthz never needs a token.
    """
    httpd = _DashboardHTTPServer((host, port), store, list(tokens or {}), metrics,
                                 scheduler or SchedulerConfig())
    thread = threading.Thread(target=httpd.serve_forever, name="metainf-dashboard",
                              kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    bound = httpd.server_address[1]
    log.info("dashboard on http://%s:%d/ (metrics on /metrics)", host, bound)
    return DashboardServer(httpd, thread, bound)
