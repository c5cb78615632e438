"""The chaos harness's offline check: a finished run is judged from its files only (the
per-process event histories, the logs, the faults, the proxies' wire logs and the final
store snapshot), one :class:`Prop` per property. ``python tests/chaos/run.py --check DIR``
re-checks an earlier run.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_cluster import (
    HEARTBEAT_TTL,
    LEASE_TTL,
    PROXIED,
    PROXIED_WORKER,
    RENEW_INTERVAL,
    TIMEOUT_GRACE,
    read_jsonl,
)

from distsched.testing.processes import percentile

#: The leader's housekeeping (reap, timeouts) period: min(heartbeat_interval, 1 s), where the
#: scheduler CLI sets heartbeat_interval = min(2, heartbeat_ttl / 3).
LEADER_PASS = min(min(2.0, HEARTBEAT_TTL / 3), 1.0)
TAKEOVER_BOUND = LEASE_TTL + RENEW_INTERVAL + 1.0
REDISPATCH_BOUND = HEARTBEAT_TTL + 1.0 + LEADER_PASS
#: A Redis fault is recovered when a task is dispatched again within this many seconds.
RECOVERY_BOUND = 15.0
#: Cuts of the worker PROXIED_WORKER (issue 15.2); they count as worker faults (re-dispatch).
WORKER_CUTS = ("wcut-drop", "wcut-blackhole", "wcut-reply-drop")
#: EngineConfig.fire_ahead: the leader fires and dispatches a slot this much ahead of its time.
FIRE_AHEAD = 0.2
#: A slot whose time falls in a clock-skew fault must be dispatched no earlier than FIRE_AHEAD +
#: SKEW_EARLY before it and start on a worker within [-SKEW_EARLY, SKEW_LATE] of it, measured
#: against Redis's time (the events' monotonic stamps, which libfaketime leaves alone).
SKEW_EARLY = 0.25
SKEW_LATE = 2.0
#: Tolerance between the server-time clocks of two processes (each measures the offset once a
#: minute; see RedisStorage.clock).
CLOCK_TOLERANCE = 0.25


def fmt(value: float | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def worker_pid(worker_id: str | None) -> int | None:
    """The pid in a worker id ``<name>-<pid>-<random>``."""
    m = re.search(r"-(\d+)-[0-9a-f]+$", worker_id or "")
    return int(m.group(1)) if m else None


@dataclass
class Prop:
    key: str
    ok: bool
    line: str
    #: False: reported, but does not decide the exit status (an observation, not a promise).
    gate: bool = True
    #: True: a check that does not apply to this store (printed "n/a", never passed silently).
    na: bool = False

    @property
    def label(self) -> str:
        if self.na:
            return "n/a"
        return ("ok" if self.ok else "FAIL") if self.gate else ("info" if self.ok else "note")


STEP_DOWN = re.compile(r"stopped leading term (\d+) \((.*)\)\s*$")


def check(run_dir: Path) -> tuple[dict[str, Any], list[Prop]]:
    """Check a finished run from its files only: history, logs, faults, the final snapshot."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    final = json.loads((run_dir / "final.json").read_text())
    faults = [f for f in read_jsonl(run_dir / "faults.jsonl") if "skipped" not in f]
    acked = read_jsonl(run_dir / "acked.jsonl")
    kinds = {r["id"]: r["kind"] for r in acked}
    sup = read_jsonl(run_dir / "supervisor.jsonl")
    events: list[dict[str, Any]] = []
    files: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((run_dir / "history").glob("*.jsonl")):
        rows = read_jsonl(path)
        files[path.stem] = rows
        events += rows
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_kind[e["kind"]].append(e)
    for rows in by_kind.values():
        rows.sort(key=lambda e: e["at"])
    #: On PostgreSQL: the audit of leader writes and the server log's refusals (chaos_pg.collect).
    pg = meta.get("postgres") if meta.get("storage") == "postgres" else None
    fig: dict[str, Any] = {"profile": meta["profile"]["name"], "seed": meta["seed"], "storage": meta.get("storage", "redis"),
                           "wall_seconds": meta.get("wall_seconds"), "faults": meta.get("faults_run", {}),
                           "events": len(events)}
    props: list[Prop] = []
    tasks: dict[str, Any] = final["tasks"]
    job_tasks = [t for rows in final["jobs"].values() for t in rows]
    all_tasks = {t["id"]: t for t in job_tasks}
    all_tasks.update({k: v for k, v in tasks.items() if v is not None})

    # events per task
    dispatched: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.dispatched"]:
        dispatched[e["task_id"]].append(e)
    requeued: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.requeued"]:
        requeued[e["task_id"]].append(e)
    retried: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.retry_scheduled"]:
        retried[e["task_id"]].append(e)

    # 1. slots dispatched twice -----------------------------------------------------------
    def unexplained(t: dict[str, Any]) -> int:
        """Dispatches not explained by crash re-deliveries and retries (store counters and
        the history, whichever saw more)."""
        redeliveries = max(t["redeliveries"], len(requeued.get(t["id"], ())))
        retries = max(t["attempt"] - 1, len(retried.get(t["id"], ())))
        accepted = max(t["dispatches"], len({e["attempt_id"] for e in dispatched.get(t["id"], ())}))
        return max(0, accepted - (redeliveries + retries + 1)) if accepted else 0

    slot_twice = [t["id"] for t in job_tasks if unexplained(t)]
    task_twice = [tid for tid, t in tasks.items() if t is not None and unexplained(t)]
    # The same attempt accepted from two leaders (two task.dispatched with one attempt id).
    same_attempt = 0
    for evs in dispatched.values():
        per_attempt = Counter(e["attempt_id"] for e in evs)
        same_attempt += sum(1 for n in per_attempt.values() if n > 1)
    fig["slots"] = len(job_tasks)
    fig["slots_dispatched_twice"] = len(slot_twice)
    fig["tasks_dispatched_twice"] = len(task_twice)
    fig["attempts_dispatched_twice"] = same_attempt
    props.append(Prop("slots_dispatched_twice", not slot_twice and not same_attempt,
                      f"slots dispatched twice: {len(slot_twice)} of {len(job_tasks)} slots "
                      f"(one-off tasks: {len(task_twice)}; one attempt accepted twice: {same_attempt})"
                      + (f" e.g. {slot_twice[:3]}" if slot_twice else "")))

    # 2. fenced writes refused -------------------------------------------------------------
    reasons: Counter[str] = Counter()
    for path in sorted((run_dir / "logs").glob("s*.log")):
        for line in path.read_text(errors="replace").splitlines():
            m = STEP_DOWN.search(line)
            if m:
                reasons[m.group(2).split(":")[0]] += 1
    lost_reasons = Counter(e["reason"].split(":")[0] for e in by_kind["leader.lost"])
    if pg is not None:
        # No wire parser on PostgreSQL: each refusal is a DSFEN error line of the server log.
        wire_by = dict(Counter(r["node"].split("-g", 1)[0] for r in pg["refusals"]))
    else:
        wire_by = {n: p.get("fenced_replies", 0) for n, p in meta.get("proxies", {}).items()}
    wire = sum(wire_by.values())
    wire_label = "DSFEN errors in the PostgreSQL server log" if pg is not None else "FENCED replies on the wire"
    fig["fenced_replies_on_wire_by_scheduler"] = wire_by
    fig["step_downs_by_reason"] = dict(reasons)
    fig["leader_lost_events_by_reason"] = dict(lost_reasons)
    fig["fenced_step_downs"] = reasons.get("fenced", 0)
    fig["fenced_leader_lost_events"] = lost_reasons.get("fenced", 0)
    fig["fenced_replies_on_wire"] = wire
    # Every scheduler talks through a proxy, so the wire count includes the refusals a
    # client saw (and stepped down on) as well as those it no longer waited for.
    refused = max(wire, reasons.get("fenced", 0), lost_reasons.get("fenced", 0))
    fig["fenced_writes_refused"] = refused

    def pause_outcome(f: dict[str, Any]) -> str | None:
        lost = [e for e in by_kind["leader.lost"] if e["node_id"] == f["node_id"] and e["at"] >= f["t0"] - 1]
        return lost[0]["reason"].split(":")[0] if lost else None

    zombies = [f for f in faults if f["kind"] == "leader-zombie"]
    held = [f for f in zombies if not f.get("note")]
    zombie_fenced = sum(1 for f in held if (f.get("extra") or {}).get("fenced_replies", 0) > 0)
    zombie_stepped = sum(1 for f in held if pause_outcome(f) == "fenced")
    plain = [f for f in faults if f["kind"] == "leader-stop"]
    plain_fenced = sum(1 for f in plain if pause_outcome(f) == "fenced")
    plain_wire = sum(1 for f in plain if (f.get("extra") or {}).get("fenced_replies", 0) > 0)
    fig["zombie_pauses"] = {"n": len(zombies), "write_in_flight": len(held), "refused_on_wire": zombie_fenced,
                            "stepped_down_fenced": zombie_stepped}
    fig["plain_pauses"] = {"n": len(plain), "refused_on_wire": plain_wire, "stepped_down_fenced": plain_fenced}
    props.append(Prop("fenced_writes_refused", refused > 0 and zombie_fenced == len(held),
                      f"fenced writes refused: {refused} (leaders stepping down '(fenced)' in logs: "
                      f"{reasons.get('fenced', 0)}, leader.lost reason fenced: {lost_reasons.get('fenced', 0)}, "
                      f"{wire_label}: {wire}; other step-downs: "
                      + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if k != "fenced") or "none")
                      + f"); leader paused with a write in flight: refused {zombie_fenced}/{len(held)}, stepped down "
                      f"'(fenced)' {zombie_stepped}/{len(held)}; leader paused at a random busy moment: a write refused "
                      f"{plain_wire}/{len(plain)}, stepped down '(fenced)' {plain_fenced}/{len(plain)}"))

    # 3. missing slots ---------------------------------------------------------------------
    missing = 0
    expected_total = 0
    skipped = Counter()
    misaligned = 0
    for rows in final["jobs"].values():
        slots = sorted({round(t["slot"] * 1000) for t in rows if t["slot"] is not None})
        if not slots:
            continue
        expected = (slots[-1] - slots[0]) // 1000 + 1
        expected_total += expected
        missing += expected - len(slots)
        misaligned += sum(1 for s in slots if s % 1000)
        for t in rows:
            if t["state"] == "skipped":
                skipped[t["reason"] or "?"] += 1
    seen_slots = {e["task_id"] for e in by_kind["task.dispatched"] if e.get("job")}
    vanished = len(seen_slots - set(all_tasks))
    outside = missing + sum(skipped.values()) + vanished
    fig["slots_expected"] = expected_total
    fig["slots_missing"] = missing
    fig["slots_skipped"] = dict(skipped)
    fig["slot_tasks_vanished"] = vanished
    fig["slots_misaligned"] = misaligned
    # lateness of a slot: its first start on a worker vs the slot time (the leader fires and
    # dispatches a little ahead; the worker starts the task at its slot)
    first_start: dict[str, float] = {}
    for e in by_kind["attempt.started"]:
        first_start.setdefault(e["task_id"], e["at"])
    lateness = [first_start[t["id"]] - t["slot"] for t in job_tasks if t["id"] in first_start and t["slot"]]
    fig["slot_lateness"] = {"p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
                            "max": max(lateness) if lateness else None, "n": len(lateness)}

    props.append(Prop("missing_slots", outside == 0,
                      f"missing slots outside the misfire policy (fire-all): {outside} of {expected_total} expected "
                      f"(absent {missing}, skipped {sum(skipped.values())}, dispatched then vanished {vanished}); "
                      f"start lateness p50 {fmt(fig['slot_lateness']['p50'])} / p99 {fmt(fig['slot_lateness']['p99'])} / "
                      f"max {fmt(fig['slot_lateness']['max'])}"))
    # 4. takeover after a leader kill -9 ---------------------------------------------------
    elected = by_kind["leader.elected"]

    def takeover(f: dict[str, Any]) -> float | None:
        for e in elected:
            if e["at"] > f["t0"] and e["node_id"] != f["node_id"]:
                return e["at"] - f["t0"]
        return None

    kill_takeovers = [takeover(f) for f in faults if f["kind"] == "leader-kill" and f.get("node_id")]
    stop_takeovers = [takeover(f) for f in faults if f["kind"] == "leader-stop" and f.get("node_id")]
    tk = [x for x in kill_takeovers if x is not None]
    fig["takeover_kill9"] = {"n": len(kill_takeovers), "p50": percentile(tk, 50), "p95": percentile(tk, 95),
                             "max": max(tk) if tk else None, "bound": TAKEOVER_BOUND,
                             "over_bound": sum(1 for x in tk if x > TAKEOVER_BOUND),
                             "no_takeover": sum(1 for x in kill_takeovers if x is None)}
    ts = [x for x in stop_takeovers if x is not None]
    fig["takeover_sigstop"] = {"n": len(stop_takeovers), "p50": percentile(ts, 50), "max": max(ts) if ts else None}
    props.append(Prop("takeover", fig["takeover_kill9"]["over_bound"] == 0
                      and fig["takeover_kill9"]["no_takeover"] == 0,
                      f"takeover after leader kill -9: p50 {fmt(percentile(tk, 50))} / p95 {fmt(percentile(tk, 95))} / "
                      f"max {fmt(max(tk) if tk else None)} over {len(kill_takeovers)} kills (bound lease TTL "
                      f"{LEASE_TTL:g} + renew {RENEW_INTERVAL:g} + 1 = {TAKEOVER_BOUND:g}s; over: "
                      f"{fig['takeover_kill9']['over_bound']}); after leader SIGSTOP: p50 {fmt(percentile(ts, 50))} "
                      f"max {fmt(max(ts) if ts else None)} over {len(stop_takeovers)}"))

    # 5. tasks lost / non-terminal ---------------------------------------------------------
    missing_tasks = [tid for tid, t in tasks.items() if t is None]
    terminal = {"succeeded", "failed", "timed_out", "cancelled", "skipped"}
    nonterminal = [t["id"] for t in all_tasks.values() if t["state"] not in terminal]
    states = Counter(t["state"] for t in tasks.values() if t is not None)
    expected_state = {"work": "succeeded", "slow": "succeeded", "hang": "timed_out", "block": "timed_out"}
    wrong_end = [tid for tid, t in tasks.items() if t is not None and t["state"] in terminal
                 and t["state"] != expected_state[kinds[tid]]]
    slot_states = Counter(t["state"] for t in job_tasks)
    n = len(acked)
    fig["tasks_acked"] = n
    fig["tasks_by_kind"] = dict(Counter(kinds.values()))
    fig["tasks_lost"] = len(missing_tasks) + len(wrong_end)
    fig["tasks_missing_from_store"] = len(missing_tasks)
    fig["tasks_ended_unexpectedly"] = len(wrong_end)
    fig["tasks_by_state"] = dict(states)
    fig["slots_by_state"] = dict(slot_states)
    fig["tasks_non_terminal"] = len(nonterminal)
    props.append(Prop("tasks_lost", not missing_tasks and not wrong_end,
                      f"tasks lost: {len(missing_tasks) + len(wrong_end)} of {n} acked (absent from the store "
                      f"{len(missing_tasks)}, ended other than expected {len(wrong_end)}"
                      + (f" e.g. {[(x, tasks[x]['state'], tasks[x]['reason']) for x in wrong_end[:2]]}" if wrong_end else "")
                      + f"); states: {dict(states)}"))
    props.append(Prop("tasks_non_terminal", not nonterminal,
                      f"tasks left non-terminal: {len(nonterminal)} of {len(all_tasks)} (one-off and slot tasks)"
                      + (f" e.g. {nonterminal[:3]}" if nonterminal else "")))

    # 6. duplicate executions --------------------------------------------------------------
    finished_attempts: dict[str, set[str]] = defaultdict(set)
    started_attempts: Counter[str] = Counter()
    for e in by_kind["attempt.finished"]:
        finished_attempts[e["task_id"]].add(e["attempt_id"])
    for e in by_kind["attempt.started"]:
        started_attempts[e["attempt_id"]] += 1
    execs: Counter[str] = Counter()
    for path in (run_dir / "exec").glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "S":
                execs[parts[1]] += 1
    dup_exec = 0
    dup_unexplained = []
    for tid, attempts in finished_attempts.items():
        if len(attempts) > 1:
            t = all_tasks.get(tid)
            extra = len(attempts) - 1
            if t is None:
                continue
            retries = t["attempt"] - 1
            dup_exec += max(0, extra - retries)
            if extra > retries + t["redeliveries"]:
                dup_unexplained.append(tid)
    ran_twice = {tid: k for tid, k in execs.items() if k > 1}
    exec_unexplained = [tid for tid, k in ran_twice.items()
                        if tid in tasks and tasks[tid] is not None and k > tasks[tid]["dispatches"]]
    same_attempt_started = sum(1 for k in started_attempts.values() if k > 1)
    # An attempt must run only on the worker process it was dispatched to (an incarnation of a
    # worker changes its id, not its pid).
    target = {e["attempt_id"]: e["worker_id"] for e in by_kind["task.dispatched"]}
    foreign = [e for e in by_kind["attempt.started"]
               if e["attempt_id"] in target and worker_pid(e["worker_id"]) != worker_pid(target[e["attempt_id"]])]
    foreign_on_terminal = sum(1 for e in foreign if all_tasks.get(e["task_id"], {}).get("finished_at")
                              and e["at"] > all_tasks[e["task_id"]]["finished_at"])
    fig["attempts_run_by_a_worker_not_dispatched_to"] = len(foreign)
    fig["attempts_run_after_their_task_finished"] = foreign_on_terminal
    fig["duplicate_executions"] = dup_exec
    fig["duplicate_executions_unexplained"] = len(dup_unexplained)
    fig["stream_tasks_run_more_than_once"] = len(ran_twice)
    fig["stream_runs_beyond_dispatches"] = len(exec_unexplained)
    fig["attempts_started_twice"] = same_attempt_started
    props.append(Prop("duplicate_executions", not dup_unexplained and not exec_unexplained and not same_attempt_started
                      and not foreign,
                      f"duplicate executions: {dup_exec} finished attempts beyond the first (all explained by crash "
                      f"re-deliveries: {'yes' if not dup_unexplained else 'NO, ' + str(len(dup_unexplained))}); "
                      f"stream tasks whose function ran more than once: {len(ran_twice)} (more runs than dispatches: "
                      f"{len(exec_unexplained)}); one attempt started twice: {same_attempt_started}; attempts run by a "
                      f"worker they were not dispatched to: {len(foreign)} ({foreign_on_terminal} after their task had "
                      f"already finished)" + (f" e.g. {[(e['attempt_id'], e['worker_id']) for e in foreign[:3]]}"
                                              if foreign else "")))

    # 7. re-dispatch latency after a worker dies -------------------------------------------
    lost_events = by_kind["worker.lost"]

    def worker_ids(pid: int) -> set[str]:
        ids = {e["worker_id"] for e in lost_events if f"-{pid}-" in e["worker_id"]}
        for e in by_kind["attempt.started"]:
            if e.get("pid") == pid:
                ids.add(e["worker_id"])
        return ids

    redispatch: list[float] = []
    detection: list[float] = []
    no_redispatch = 0
    worker_faults = sorted((f for f in faults if f["kind"] in ("worker-kill", "worker-stop", *WORKER_CUTS) and f.get("pid")),
                           key=lambda f: f["t0"])
    for f in worker_faults:
        ids = worker_ids(f["pid"])
        # requeues caused by this fault: until the next fault of any kind (faults are sequential
        # and the harness waits for the reap before the next one)
        until = min([g["t0"] for g in faults if g.get("t0", 0) > f["t0"]] + [f["t0"] + 30])
        for e in by_kind["task.requeued"]:
            if e.get("worker_id") in ids and f["t0"] <= e["at"] < until:
                detection.append(e["at"] - f["t0"])
                nxt = [d["at"] for d in dispatched.get(e["task_id"], ()) if d["at"] >= e["at"]]
                if nxt:
                    redispatch.append(min(nxt) - f["t0"])
                else:
                    no_redispatch += 1
    over = sum(1 for x in redispatch if x > REDISPATCH_BOUND)
    fig["redispatch"] = {"n": len(redispatch), "p50": percentile(redispatch, 50), "p99": percentile(redispatch, 99),
                         "max": max(redispatch) if redispatch else None, "bound": REDISPATCH_BOUND, "over_bound": over,
                         "without_dispatch_event": no_redispatch,
                         "detection_p50": percentile(detection, 50), "detection_max": max(detection) if detection else None}
    props.append(Prop("redispatch", over == 0,
                      f"re-dispatch after a worker died (kill -9 / SIGSTOP): p50 {fmt(percentile(redispatch, 50))} / "
                      f"p99 {fmt(percentile(redispatch, 99))} / max {fmt(max(redispatch) if redispatch else None)} over "
                      f"{len(redispatch)} tasks (bound heartbeat TTL {HEARTBEAT_TTL:g} + 1 + a leader pass "
                      f"{LEADER_PASS:.2f} = {REDISPATCH_BOUND:.2f}s; over: {over}); detection (requeue) max "
                      f"{fmt(max(detection) if detection else None)}"))

    # Live workers declared dead: a worker.lost that no worker fault (nor the final shutdown)
    # explains - the process was running and not paused.
    stopping = meta.get("stopping") or math.inf
    starts = sorted(f["t0"] for f in faults if f.get("t0"))
    wrongly: list[dict[str, Any]] = []
    for e in lost_events:
        pid = worker_pid(e["worker_id"])
        if e["at"] >= stopping - 1:
            continue
        explained = any(f["pid"] == pid and f["t0"] <= e["at"] < min([g for g in starts if g > f["t0"]] + [f["t0"] + 30])
                        for f in worker_faults)
        if not explained:
            before = [f for f in faults if f.get("t0") and f["t0"] <= e["at"]]
            wrongly.append({"worker_id": e["worker_id"], "requeued": e["requeued"],
                            "after": before[-1]["kind"] if before else None,
                            "seconds_after_fault_end": round(e["at"] - before[-1]["t1"], 2) if before else None})
    fig["live_workers_declared_dead"] = {"n": len(wrongly), "tasks_requeued": sum(w["requeued"] for w in wrongly),
                                         "after": dict(Counter(w["after"] for w in wrongly)), "detail": wrongly}
    props.append(Prop("false_worker_deaths", not wrongly,
                      f"live workers declared dead (not killed or paused): {len(wrongly)}, holding "
                      f"{sum(w['requeued'] for w in wrongly)} task(s) that were requeued and may run twice; after: "
                      + (", ".join(f"{k} {v}" for k, v in sorted(Counter(str(w['after']) for w in wrongly).items()))
                         or "-"), gate=False))

    # 8. zombie worker: stale results --------------------------------------------------------
    stale_accepted = [t["id"] for t in all_tasks.values()
                      if t["result"] is not None and t["result"]["attempt_id"] != t["attempt_id"]]
    current_attempt = {t["id"]: t["attempt_id"] for t in all_tasks.values()}
    late = [e for e in by_kind["attempt.finished"]
            if e["task_id"] in current_attempt and e["attempt_id"] != current_attempt[e["task_id"]]
            and requeued.get(e["task_id"])]
    # The stored result must come from the process the current attempt was dispatched to.
    foreign_results = [t["id"] for t in all_tasks.values()
                       if t["result"] is not None and t["result"]["worker_id"] and t["attempt_id"] in target
                       and worker_pid(t["result"]["worker_id"]) != worker_pid(target[t["attempt_id"]])]
    lost_at = {e["worker_id"]: e["at"] for e in lost_events}
    # A paused worker that resumes may start what it had pulled before the pause (a stale
    # attempt: its result is refused) - at-least-once allows it; counted, not a failure.
    zombie_starts = [e for e in by_kind["attempt.started"]
                     if e["worker_id"] in lost_at and e["at"] > lost_at[e["worker_id"]] + CLOCK_TOLERANCE]
    fig["stale_results_accepted"] = len(stale_accepted)
    fig["results_accepted_from_a_worker_not_dispatched_to"] = len(foreign_results)
    fig["late_results_of_superseded_attempts"] = len(late)
    fig["stale_attempts_started_after_resume"] = len(zombie_starts)
    props.append(Prop("stale_results", not stale_accepted and not foreign_results,
                      f"stale results accepted: {len(stale_accepted) + len(foreign_results)} (of a superseded attempt: "
                      f"{len(stale_accepted)}; from a worker the attempt was not dispatched to: {len(foreign_results)}); "
                      f"late results of superseded attempts reported by paused/killed workers: {len(late)}, all "
                      f"refused; stale attempts a paused worker started after resuming (pulled before the pause): "
                      f"{len(zombie_starts)}"))

    # 9. zombie leader ---------------------------------------------------------------------
    bad_order = 0
    for rows in files.values():
        leading = False
        for e in rows:
            if e["kind"] == "leader.elected":
                leading = True
            elif e["kind"] == "leader.lost":
                leading = False
            elif e["kind"] == "task.dispatched" and not leading:
                bad_order += 1
    # A dispatch whose pass began after a higher term was elected elsewhere.
    terms = sorted((e["at"], e["term"], e["node_id"]) for e in elected)
    zombie_dispatch = 0
    for rows in files.values():
        term = None
        for e in rows:
            if e["kind"] == "leader.elected":
                term = e["term"]
            elif e["kind"] == "task.dispatched" and term is not None:
                if any(t > term and at < e["at"] - CLOCK_TOLERANCE for at, t, _ in terms):
                    zombie_dispatch += 1
    monotonic = all(b[1] > a[1] for a, b in zip(terms, terms[1:]))
    # On the wire: every fenced leader write Redis accepted, with the writer's term; none may
    # land after a higher term was elected.
    wire_writes = [w for p in meta.get("proxies", {}).values() for w in p.get("leader_writes", [])]
    accepted = [(t, tok) for t, tok, outcome in wire_writes if outcome == "OK"]
    stale_accepted_wire = []
    for t, tok in accepted:
        term = int(tok.rsplit("|", 1)[1])
        if any(tt > term and at < t - CLOCK_TOLERANCE for at, tt, _ in terms):
            stale_accepted_wire.append((t, tok))
    if pg is not None:
        # The audit table (chaos_pg): each committed leader write and each acquisition, with
        # its commit time on the server; a write of term T committed after a term > T was
        # acquired was accepted from a superseded term.
        acquired = [(c, t) for _, t, c in pg["acquisitions"] if c is not None]
        accepted = [(c, f"{n}|{t}") for n, t, c in pg["writes"]]
        stale_accepted_wire = [(c, tok) for c, tok in accepted
                               if c is None or any(tt > int(tok.rsplit("|", 1)[1]) and at < c for at, tt in acquired)]
        acquired.sort()
        fig["store_leader_writes"] = {"accepted": len(accepted), "refused": len(pg["refusals"]),
                                      "accepted_from_a_superseded_term": len(stale_accepted_wire),
                                      "acquisitions": len(acquired),
                                      "acquisition_terms_increasing": all(b[1] > a[1] for a, b in
                                                                          zip(acquired, acquired[1:])),
                                      "source": "audit table (commit times) + server log (DSFEN)"}
        wire_writes = []
        monotonic = monotonic and fig["store_leader_writes"]["acquisition_terms_increasing"]
    fig["wire_leader_writes"] = {"accepted": len(accepted),
                                 "refused": sum(1 for w in wire_writes if w[2] == "FENCED"),
                                 "other": sum(1 for w in wire_writes if w[2] not in ("OK", "FENCED")),
                                 "accepted_from_a_superseded_term": len(stale_accepted_wire),
                                 "unparsed_connections": sum(p.get("unparsed_connections", 0)
                                                             for p in meta.get("proxies", {}).values())}
    if pg is not None:
        fig["wire_leader_writes"] = "n/a on postgres"
    fig["elections"] = len(terms)
    fig["terms_strictly_increasing"] = monotonic
    fig["dispatches_outside_a_term"] = bad_order
    fig["dispatches_from_a_superseded_term"] = zombie_dispatch
    where = (f"committed per the audit table, {len(pg['refusals'])} refused DSFEN, judged on server commit times"
             if pg is not None else f"accepted on the wire ({fig['wire_leader_writes']['refused']} refused FENCED)")
    props.append(Prop("zombie_leader", bad_order == 0 and zombie_dispatch == 0 and monotonic and not stale_accepted_wire,
                      f"zombie leader: leader writes accepted after a higher term was elected: {len(stale_accepted_wire)} "
                      f"of {len(accepted)} {where}; "
                      f"dispatch events from an old term: {zombie_dispatch} (outside any term of the node: {bad_order}); "
                      f"terms strictly increasing over {len(terms)} elections: {'yes' if monotonic else 'NO'}"))

    if pg is not None:
        props.append(Prop("wire_log", True, "leader writes read off the wire (RESP: FENCED replies, unparsed "
                          "connections): n/a on postgres - the proxy only forwards bytes; refusals come from the "
                          "server log, accepted writes from the audit table", gate=False, na=True))

    # 10. timeouts -------------------------------------------------------------------------
    end = final["now"]
    overdue = [t["id"] for t in all_tasks.values() if t["state"] in ("running", "dispatched")
               and end - (t["started_at"] or t["dispatched_at"] or end) > t["timeout"] + TIMEOUT_GRACE]
    hang_ids = [tid for tid, k in kinds.items() if k in ("hang", "block")]
    hang_timed_out = sum(1 for tid in hang_ids if tasks.get(tid) and tasks[tid]["state"] == "timed_out")
    paused = [(f["pid"], f["t0"], f["t1"]) for f in faults if f["kind"] == "worker-stop"]
    overshoot = [e["duration"] - 0.5 for e in by_kind["attempt.finished"]
                 if e.get("outcome") == "timed_out" and kinds.get(e["task_id"]) in ("hang", "block")
                 # an attempt that was SIGSTOPped with its worker overshoots by the pause
                 and not any(pid == e.get("pid") and t0 < e["at"] and t1 > e["at"] - e["duration"]
                             for pid, t0, t1 in paused)]
    leader_timeouts = sum(1 for e in by_kind["task.finished"] + by_kind["task.retry_scheduled"]
                          if (e.get("state") == "timed_out" or e.get("outcome") == "timed_out")
                          and e["task_id"] in kinds and kinds[e["task_id"]] in ("work", "slow"))
    fig["timeouts"] = {"running_past_timeout_and_grace": len(overdue), "hang_tasks": len(hang_ids),
                       "hang_tasks_timed_out": hang_timed_out, "overshoot_p99": percentile(overshoot, 99),
                       "overshoot_max": max(overshoot) if overshoot else None, "worker_timeouts": len(overshoot),
                       "normal_tasks_timed_out": leader_timeouts}
    props.append(Prop("timeouts", not overdue and hang_timed_out == len(hang_ids),
                      f"timeouts: tasks still running past timeout + grace at the end: {len(overdue)}; hanging tasks "
                      f"ended timed_out: {hang_timed_out}/{len(hang_ids)}; worker timeout overshoot p99 "
                      f"{fmt(percentile(overshoot, 99))} max {fmt(max(overshoot) if overshoot else None)}"))

    # 11. recovery after Redis restarts / stalls -------------------------------------------
    recov: list[float] = []
    recov_detail = []
    finished_ev = by_kind["task.finished"]
    for f in faults:
        if f["kind"] not in ("redis-kill", "redis-shutdown", "redis-sleep", "pg-crash") or not f.get("t_back"):
            continue
        back = f["t_back"]
        d = next((e["at"] for e in by_kind["task.dispatched"] if e["at"] > back), None)
        fin = next((e["at"] for e in finished_ev if e["at"] > back), None)
        first = min(x for x in (d, fin, math.inf) if x is not None)
        value = None if first is math.inf else first - back
        recov_detail.append({"kind": f["kind"], "first_dispatch": None if d is None else d - back,
                             "first_finish": None if fin is None else fin - back})
        if value is not None:
            recov.append(value)
    n_redis = len(recov_detail)
    not_recovered = n_redis - sum(1 for x in recov if x <= RECOVERY_BOUND)
    manual = len(sup)
    fig["postgres_recovery" if pg is not None else "redis_recovery"] = {"n": n_redis, "p50": percentile(recov, 50), "max": max(recov) if recov else None,
                             "detail": recov_detail, "not_recovered": not_recovered}
    fig["unexpected_process_exits"] = manual
    fig["manual_steps"] = manual
    store_name = "PostgreSQL crashes (pg_ctl stop -m immediate) and restarts" if pg is not None \
        else "Redis restarts/stalls"
    props.append(Prop("redis_recovery", not_recovered == 0 and manual == 0,
                      f"recovery after {store_name}: first dispatch or finish p50 {fmt(percentile(recov, 50))} "
                      f"/ max {fmt(max(recov) if recov else None)} after "
                      f"{'PostgreSQL' if pg is not None else 'Redis'} was back, over {n_redis} faults "
                      f"(not recovered within {RECOVERY_BOUND:g}s: {not_recovered}); manual steps: {manual} "
                      f"(processes that exited on their own and had to be restarted)"))

    if pg is not None:
        props.append(Prop("store_stall", True, "store stall (Redis DEBUG SLEEP) and SHUTDOWN NOSAVE: n/a on postgres - "
                          "the PostgreSQL faults are pg_ctl stop -m immediate + restart on the same port",
                          gate=False, na=True))

    # 12. network cut of s1 (information + bound on self-demotion) --------------------------
    demotion: list[float] = []
    for f in faults:
        if f["kind"].startswith("cut") and f.get("was_leader"):
            lost = [e["at"] for e in by_kind["leader.lost"] if e["node_id"] == f["node_id"] and e["at"] >= f["t0"]]
            if lost:
                demotion.append(min(lost) - f["t0"])
    cuts = [f for f in faults if f["kind"].startswith("cut")]
    fig["cuts"] = {"n": len(cuts), "of_the_leader": sum(1 for f in cuts if f.get("was_leader")),
                   "self_demotion": demotion,
                   "fenced_replies_per_cut": [f.get("extra", {}).get("fenced_replies") for f in cuts]}
    props.append(Prop("partition", all(x <= LEASE_TTL + RENEW_INTERVAL for x in demotion),
                      f"network cut of {PROXIED} ({', '.join(f['mode'] or '' for f in cuts) or 'none'}): "
                      f"{fig['cuts']['of_the_leader']} of {len(cuts)} cut the leader; it stepped down after "
                      + (", ".join(f"{x:.2f}s" for x in demotion) or "n/a")
                      + f" (bound TTL + renew = {LEASE_TTL + RENEW_INTERVAL:g}s)"))

    # 13. every live worker process is registered and heartbeating at the end ------------
    registered = {w["pid"] for w in final["workers"] if w["heartbeat_age"] <= HEARTBEAT_TTL and not w["draining"]}
    idle = {name: pid for name, pid in final.get("worker_processes", {}).items() if pid not in registered}
    fig["worker_processes_out_of_service"] = idle
    props.append(Prop("workers_in_service", not idle,
                      f"worker processes alive but not registered/heartbeating at the end: {len(idle)} of "
                      f"{len(final.get('worker_processes', {}))}" + (f" {idle}" if idle else "")))

    # 14. clean shutdown -----------------------------------------------------------------
    codes = meta.get("exit_codes", {})
    bad_exit = {k: v for k, v in codes.items() if v != 0}
    fig["exit_codes_not_zero"] = bad_exit
    props.append(Prop("clean_shutdown", not bad_exit,
                      f"SIGTERM shutdown: {len(codes) - len(bad_exit)} of {len(codes)} processes exited 0"
                      + (f"; others: {bad_exit}" if bad_exit else "")))
    props += _issue15(run_dir, meta, faults, by_kind, dispatched, requeued, all_tasks, worker_ids, fig)
    if not any(f["kind"] == "leader-zombie" for f in faults):
        # Refusals are expected only where a leader is paused with a write in flight.
        for p in props:
            if p.key == "fenced_writes_refused":
                p.ok = True
    if meta["profile"].get("appendfsync", "always") != "always":
        # Without `appendfsync always` a Redis crash loses acknowledged writes: what they cost is
        # measured (the aof_loss line), the properties that assume none is lost are not gated.
        for p in props:
            if p.key in LOSS_PROPERTIES:
                p.gate = False
    fig["ok"] = all(p.ok for p in props if p.gate)
    fig["properties"] = {p.key: p.ok for p in props if p.gate}
    fig["notes"] = {p.key: p.ok for p in props if not p.gate}
    return fig, props


#: Properties that hold only if Redis loses no acknowledged write (not gated under everysec).
LOSS_PROPERTIES = ("slots_dispatched_twice", "missing_slots", "tasks_lost", "duplicate_executions")


def _issue15(run_dir: Path, meta: dict[str, Any], faults: list[dict[str, Any]], by_kind: dict[str, list[dict]],
             dispatched: dict[str, list[dict]], requeued: dict[str, list[dict]], all_tasks: dict[str, Any],
             worker_ids: Any, fig: dict[str, Any]) -> list[Prop]:
    """The properties of the faults issue 15.2 added: worker cuts, reply-drop cuts, clock skew,
    and the loss of a Redis kill -9 under `appendfsync everysec`. Only for runs that had them."""
    props: list[Prop] = []
    lost_events = by_kind["worker.lost"]
    starts = sorted(f["t0"] for f in faults if f.get("t0"))

    def until(f: dict[str, Any]) -> float:
        return min([g for g in starts if g > f["t0"]] + [f["t0"] + 30])

    # worker cut (drop / blackhole): reaped, its tasks re-dispatched, its late results refused
    cuts = [f for f in faults if f["kind"] in WORKER_CUTS and f.get("pid")]
    if cuts:
        detail = []
        for f in cuts:
            ids = set(f.get("extra", {}).get("worker_ids") or []) | worker_ids(f["pid"])
            end = until(f)
            lost = [e for e in lost_events if e["worker_id"] in ids and f["t0"] <= e["at"] < end]
            req = [e for e in by_kind["task.requeued"] if e.get("worker_id") in ids and f["t0"] <= e["at"] < end]
            elsewhere = to_itself = not_again = 0
            superseded: set[str] = set()
            for e in req:
                nxt = [d for d in dispatched.get(e["task_id"], ()) if d["at"] >= e["at"]]
                if not nxt:
                    not_again += 1
                    continue
                if worker_pid(nxt[0]["worker_id"]) == f["pid"]:
                    to_itself += 1
                else:
                    elsewhere += 1
            for e in req:
                superseded |= {d["attempt_id"] for d in dispatched.get(e["task_id"], ())
                               if d["worker_id"] in ids and d["at"] <= e["at"]}
            late = [e for e in by_kind["attempt.finished"] if e["worker_id"] in ids and e["attempt_id"] in superseded]
            accepted = [e for e in late if (all_tasks.get(e["task_id"]) or {}).get("result")
                        and all_tasks[e["task_id"]]["result"]["attempt_id"] == e["attempt_id"]]
            detail.append({"mode": f["mode"], "duration": round(f["duration"], 2), "reaped": len(lost),
                           "requeued": len(req), "redispatched_elsewhere": elsewhere,
                           "redispatched_to_its_new_incarnation": to_itself, "not_dispatched_again": not_again,
                           "late_results": len(late), "late_results_accepted": len(accepted),
                           "reaped_after": round(min(e["at"] for e in lost) - f["t0"], 2) if lost else None})
        fig["worker_cuts"] = detail
        # A drop or blackhole cut past the TTL must get the worker reaped; under reply-drop its
        # heartbeats reach Redis but the next one waits for the lost reply, so it may or may not be.
        ok = all((d["reaped"] >= 1 or d["mode"] == "reply-drop") and d["late_results_accepted"] == 0 for d in detail)
        props.append(Prop("worker_cut", ok, f"network cut of {PROXIED_WORKER} ("
                          + "; ".join(f"{d['mode']} {d['duration']:.1f}s: reaped after {fmt(d['reaped_after'])}, "
                                      f"{d['requeued']} task(s) requeued, re-dispatched to another worker "
                                      f"{d['redispatched_elsewhere']} / to its new incarnation "
                                      f"{d['redispatched_to_its_new_incarnation']} / not again {d['not_dispatched_again']}, "
                                      f"late results of superseded attempts {d['late_results']}, accepted "
                                      f"{d['late_results_accepted']}" for d in detail) + ")"))

    # reply-drop cuts: requests delivered, replies dropped
    rd = [f for f in faults if f["kind"] in ("cut-reply-drop", "wcut-reply-drop")]
    if rd:
        parts = []
        ok = True
        took_back = 0
        for path in sorted((run_dir / "logs").glob(f"{PROXIED_WORKER}-*.log")):
            took_back += sum(int(m.group(1)) for m in re.finditer(r"took back (\d+) task", path.read_text(errors="replace")))
        for f in rd:
            if f["kind"] == "cut-reply-drop":
                lost = [e["at"] for e in by_kind["leader.lost"] if e["node_id"] == f["node_id"] and e["at"] >= f["t0"]]
                new = [e["at"] for e in by_kind["leader.elected"] if e["at"] >= f["t0"] and e["node_id"] != f["node_id"]]
                step = min(lost) - f["t0"] if f.get("was_leader") and lost else None
                if f.get("was_leader"):
                    ok = ok and step is not None and step <= LEASE_TTL + RENEW_INTERVAL
                parts.append(f"{PROXIED} {'(the leader) ' if f.get('was_leader') else ''}{f['duration']:.1f}s: "
                             + (f"stepped down after {fmt(step)}, another node led after "
                                f"{fmt(min(new) - f['t0'] if new else None)}, " if f.get("was_leader") else "")
                             + f"FENCED replies {f.get('extra', {}).get('fenced_replies')}")
            else:
                parts.append(f"{PROXIED_WORKER} {f['duration']:.1f}s: reply chunks dropped "
                             f"{f.get('extra', {}).get('replies_dropped')} (see the cut line)")
        fig["reply_drop"] = {"n": len(rd), "tasks_taken_back_after_a_lost_pull_reply": took_back}
        props.append(Prop("reply_drop", ok, "requests delivered, replies dropped: " + "; ".join(parts)
                          + f"; tasks {PROXIED_WORKER} took back after a pull whose reply was lost: {took_back}"))

    # clock skew: a node's wall clock stepped +-30 s; everything runs on Redis's time
    skews = [f for f in faults if f["kind"] in ("skew-leader", "skew-worker") and f.get("t0")]
    if skews:
        off = meta.get("mono_to_server")
        slots_by_id = {t["id"]: t for t in all_tasks.values() if t.get("job") and t.get("slot")}
        first_start: dict[str, float] = {}
        first_dispatch: dict[str, float] = {}
        for e in by_kind["attempt.started"]:
            if e.get("mono") is not None and e["task_id"] in slots_by_id:
                first_start.setdefault(e["task_id"], e["mono"])
        for e in by_kind["task.dispatched"]:
            if e.get("mono") is not None and e["task_id"] in slots_by_id:
                first_dispatch.setdefault(e["task_id"], e["mono"])
        detail = []
        stopping = meta.get("stopping") or math.inf
        for f in skews:
            # (the processes' SIGTERM at the end of the run is not a spurious change)
            lo, hi = f["t0"], min(f["t1"] + 1.0, stopping - 3.0)
            window = [t for t in slots_by_id.values() if lo <= t["slot"] <= hi]
            starts_late = [first_start[t["id"]] + off - t["slot"] for t in window if t["id"] in first_start] if off else []
            leads = [t["slot"] - (first_dispatch[t["id"]] + off) for t in window if t["id"] in first_dispatch] if off else []
            spurious: list[str] = []
            if f["kind"] == "skew-leader":
                spurious += [f"leader.lost {e['reason']}" for e in by_kind["leader.lost"]
                             if e["node_id"] == f["node_id"] and lo <= e["at"] <= min(hi + 2, until(f), stopping - 1)]
                spurious += [f"leader.elected {e['node_id']}" for e in by_kind["leader.elected"]
                             if lo <= e["at"] <= min(hi + 2, until(f), stopping - 1)]
            # The step really happened: the target's own wall clock (the observer's "wall") minus
            # Redis's time (its "mono" mapped), over its events during the fault.
            seen = [e["wall"] - (e["mono"] + off) for e in by_kind["attempt.started"] + by_kind["task.dispatched"]
                    if off and e.get("mono") is not None and e.get("pid") == f["pid"] and lo <= e["mono"] + off <= hi]
            ids = set(f.get("extra", {}).get("worker_ids") or []) | (worker_ids(f["pid"]) if f.get("pid") else set())
            spurious += [f"worker.lost {e['worker_id']}" for e in lost_events
                         if lo <= e["at"] <= min(hi + 3, until(f), stopping - 1)
                         and (e["worker_id"] in ids or f["kind"] == "skew-leader")]
            detail.append({"kind": f["kind"], "target": f["target"], "steps": [s[1] for s in f["extra"]["steps"]],
                           "slots": len(window), "started": len(starts_late),
                           "start_lateness_min": min(starts_late) if starts_late else None,
                           "start_lateness_p99": percentile(starts_late, 99),
                           "start_lateness_max": max(starts_late) if starts_late else None,
                           "dispatch_lead_max": max(leads) if leads else None,
                           "early": sum(1 for x in starts_late if x < -SKEW_EARLY)
                           + sum(1 for x in leads if x > FIRE_AHEAD + SKEW_EARLY),
                           "late": sum(1 for x in starts_late if x > SKEW_LATE), "spurious": spurious,
                           "wall_clock_offset_seen": [round(min(seen), 1), round(max(seen), 1)] if seen else None})
        fig["clock_skew"] = detail
        ok = off is not None and all(d["slots"] and d["started"] == d["slots"] and not d["early"] and not d["late"]
                                     and not d["spurious"] and d["wall_clock_offset_seen"]
                                     and d["wall_clock_offset_seen"][0] < -25 and d["wall_clock_offset_seen"][1] > 25
                                     for d in detail)
        props.append(Prop("clock_skew", ok, "wall clock stepped +-30 s ("
                          + "; ".join(f"{d['kind']} {d['target']} {'/'.join(f'{x:+.0f}' for x in d['steps'])} "
                                      f"(its wall clock seen {d['wall_clock_offset_seen']} s off): "
                                      f"{d['slots']} slots, start vs Redis time min {fmt(d['start_lateness_min'])} / "
                                      f"p99 {fmt(d['start_lateness_p99'])} / max {fmt(d['start_lateness_max'])}, "
                                      f"dispatched ahead at most {fmt(d['dispatch_lead_max'])} (bounds: start within "
                                      f"-{SKEW_EARLY:g}..{SKEW_LATE:g}s, dispatch at most {FIRE_AHEAD + SKEW_EARLY:g}s "
                                      f"ahead); early {d['early']}, late {d['late']}, spurious leader/worker changes "
                                      f"{len(d['spurious'])}" + (f" {d['spurious'][:3]}" if d["spurious"] else "")
                                      for d in detail) + ")"))

    # Redis kill -9 right after acknowledged submissions: what the AOF setting lost
    kills = [f for f in faults if f["kind"] == "redis-kill-busy"]
    if kills:
        final_tasks = json.loads((run_dir / "final.json").read_text())["tasks"]
        acked_lost = [tid for tid, t in final_tasks.items() if t is None]
        # A slot record lost: the same attempt of a slot dispatched twice (the record and the
        # job's high-water mark rolled back, the slot fired again) or a dispatched slot gone.
        same: list[str] = []
        slot_ids = slots_ids(all_tasks)
        for tid, evs in dispatched.items():
            if tid in slot_ids or any(e.get("job") for e in evs):
                per = Counter(e["attempt_id"] for e in evs)
                if any(n > 1 for n in per.values()):
                    same.append(tid)
        gone = fig.get("slot_tasks_vanished", 0)
        reran = [tid for tid, evs in dispatched.items() if not any(e.get("job") for e in evs)
                 and any(n > 1 for n in Counter(e["attempt_id"] for e in evs).values())]
        fsync = meta["profile"].get("appendfsync", "always")
        # What an OS crash or power loss at the same instants would put at risk under everysec
        # (not injected here: the kernel keeps what Redis wrote): writes acknowledged within
        # the second before each kill, i.e. possibly not fsynced yet.
        acked_at = [r["acked"] for r in read_jsonl(run_dir / "acked.jsonl")]
        at_risk = sum(1 for f in kills for t in acked_at if f["t0"] - 1.0 < t <= f["t0"])
        slot_risk = sum(1 for f in kills for e in by_kind["task.dispatched"]
                        if e.get("job") and f["t0"] - 1.0 < e["at"] <= f["t0"])
        fig["aof_loss"] = {"acked_within_1s_before_a_kill": at_risk, "slots_dispatched_within_1s_before_a_kill": slot_risk,
                           "appendfsync": fsync, "kills": len(kills), "acked_submissions": fig.get("tasks_acked"),
                           "acked_submissions_lost": len(acked_lost), "slot_records_lost": len(same) + gone,
                           "slots_fired_again": len(same), "slots_vanished": gone,
                           "one_off_attempts_dispatched_again": len(reran),
                           "burst_before_each_kill": [f.get("extra", {}).get("burst") for f in kills],
                           "aof_delayed_fsync_max": max((f.get("extra", {}).get("aof") or {}).get("aof_delayed_fsync")
                                                        or 0 for f in kills)}
        a = fig["aof_loss"]
        props.append(Prop("aof_loss", fsync != "always" or (not acked_lost and not same and not gone),
                          f"Redis kill -9 x{len(kills)} under load, appendfsync {fsync}: acknowledged submissions lost "
                          f"{a['acked_submissions_lost']} of {a['acked_submissions']}; slot records lost "
                          f"{a['slot_records_lost']} (fired again {len(same)}, vanished {gone}); one-off attempts "
                          f"dispatched again after a rollback {len(reran)}; AOF writes Redis postponed behind a slow "
                          f"fsync before a kill (aof_delayed_fsync): {a['aof_delayed_fsync_max']}; at risk on a power loss at "
                          f"the same instants (acknowledged within the second before a kill): {at_risk} submissions, "
                          f"{slot_risk} slot dispatches", gate=fsync == "always"))
    return props


def slots_ids(all_tasks: dict[str, Any]) -> set[str]:
    return {tid for tid, t in all_tasks.items() if t.get("job")}
