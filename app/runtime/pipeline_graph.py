"""The rules of a pipeline run's graph, as pure functions over its step definitions
(name -> {"name", "agent", "depends_on", "input"}) and progress entries (name -> entry,
as stored in PipelineRun.steps).

Shared by the in-process executor (app/services/pipeline_runs.py) and the Temporal
workflow (app/runtime/temporal/pipelines.py), which must stay deterministic: standard
library only, no clock, no I/O.
"""

from __future__ import annotations

from graphlib import TopologicalSorter
from typing import Any

SEPARATOR = "\n\n"  # between the outputs of several dependencies, or of several sinks

Defs = dict[str, dict[str, Any]]
Entries = dict[str, dict[str, Any]]


class Schedule:
    """Which steps may start, by `graphlib.TopologicalSorter` over `depends_on`: `ready()`
    gives the steps whose dependencies have all completed, in definition order, and
    marks skipped (transitively) the ones behind a failed or skipped step; `done(name)`
    reports a step that ended, which may make others ready."""

    def __init__(self, defs: Defs, entries: Entries):
        self.defs, self.entries = defs, entries
        self.order = {name: i for i, name in enumerate(defs)}
        self.sorter = TopologicalSorter({name: step["depends_on"] for name, step in defs.items()})
        self.sorter.prepare()  # CycleError: stored pipelines were checked for cycles when saved

    def ready(self) -> list[str]:
        startable: list[str] = []
        batch = self.sorter.get_ready()
        while batch:
            for name in batch:
                entry = self.entries[name]
                if entry["status"] == "pending" and any(self.entries[d]["status"] in ("failed", "skipped")
                                                        for d in self.defs[name]["depends_on"]):
                    entry["status"] = "skipped"
                if entry["status"] == "pending":
                    startable.append(name)
                elif entry["status"] != "running":  # skipped, or ended already: what follows may go on
                    self.sorter.done(name)
            batch = self.sorter.get_ready()
        return sorted(startable, key=self.order.__getitem__)

    def done(self, name: str) -> None:
        self.sorter.done(name)


def input_for(step: dict[str, Any], entries: Entries, run_input: str | None) -> str:
    """A step's own input, else its dependencies' outputs, else the run's input."""
    if step.get("input") is not None:
        return step["input"]
    if step["depends_on"]:
        return SEPARATOR.join(entries[d]["output"] or "" for d in step["depends_on"])
    return run_input or ""


def conclude(defs: Defs, entries: Entries) -> tuple[str, str]:
    """The run's status and output: the sinks' outputs (steps nothing depends on)."""
    status = "completed" if {e["status"] for e in entries.values()} == {"completed"} else "failed"
    needed = {d for s in defs.values() for d in s["depends_on"]}
    sinks = [entries[name] for name in defs if name not in needed]
    return status, SEPARATOR.join(e["output"] or "" for e in sinks if e["status"] == "completed")


def total_usage(entries: Entries) -> dict[str, int]:
    input_tokens = sum(e["usage"]["input_tokens"] for e in entries.values())
    output_tokens = sum(e["usage"]["output_tokens"] for e in entries.values())
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}


def end_step(entry: dict[str, Any], status: str, now_iso: str, duration_ms: int | None, *,
             output: str | None = None, error: dict[str, str] | None = None) -> None:
    entry.update(status=status, output=output, error=error, finished_at=now_iso, duration_ms=duration_ms)


def step_result(entry: dict[str, Any], outcome_status: str, output: str, usage: dict[str, int],
                error: dict[str, str] | None, now_iso: str, duration_ms: int | None) -> None:
    """Record a finished turn in its step's entry: completed, or failed with the turn's error."""
    entry["usage"] = {**usage, "total_tokens": usage.get("input_tokens", 0) + usage.get("output_tokens", 0)}
    if outcome_status == "completed":
        end_step(entry, "completed", now_iso, duration_ms, output=output)
    else:
        ended = "waits for a tool call to be approved or answered; pipelines do not wait for people" \
            if outcome_status.startswith("waiting_for_") else f"ended {outcome_status}"
        error = error or {"code": outcome_status, "message": f"the turn {ended}"}
        end_step(entry, "failed", now_iso, duration_ms, output=output or None, error=error)


def abort_entries(entries: Entries, code: str, reason: str, now_iso: str, duration_of) -> None:
    """A stopped run: running steps failed with the reason, pending ones skipped.
    `duration_of(entry)` gives a running step's duration so far in ms (or None)."""
    for entry in entries.values():
        if entry["status"] == "running":
            entry.update(status="failed", error={"code": code, "message": reason}, finished_at=now_iso,
                         duration_ms=duration_of(entry))
        elif entry["status"] == "pending":
            entry["status"] = "skipped"
