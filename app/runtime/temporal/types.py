"""Payloads of the session workflow and its activities: plain dataclasses, JSON on the
wire. Standard library only: the workflow sandbox imports this module as it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The workflow's id is derived from the session's, so any API process finds it.
WORKFLOW_ID_PREFIX = "session:"


def workflow_id(session_id: str) -> str:
    return WORKFLOW_ID_PREFIX + session_id


@dataclass
class TurnRequest:
    """One user message to answer (already stored by the API process)."""

    message_id: str
    variables: dict[str, Any] | None = None
    sequence: int = 0  # the message's number in the session: turns run in this order


@dataclass
class SessionState:
    """What a session workflow starts (or continues-as-new) with."""

    session_id: str
    queue: list[TurnRequest] = field(default_factory=list)
    last_started: int = 0  # sequence of the last message whose turn started


@dataclass
class EarlierInput:
    """User messages numbered between the last turn started and the next one."""

    session_id: str
    after: int
    before: int


@dataclass
class StepInput:
    session_id: str
    message_id: str
    variables: dict[str, Any] | None
    iteration: int
    step_id: str  # chosen by the workflow, so a retried step keeps its ids
    step_message_id: str
    started_at_seq: int | None  # None on the turn's first step
    message_sequence: int = 0  # the user message's number (so the step need not read it)


@dataclass
class StepResult:
    started_at_seq: int = 0
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # {id, name, arguments}
    max_iterations: int = 10  # the workers' MAX_ITERATIONS
    gone: bool = False  # the session was deleted: the workflow ends
    stored: list[int] = field(default_factory=list)  # numbers of the messages the step stored
    completed: bool = False  # no tool calls: the step also ended the turn (session.completed)
    kinds: list[str] = field(default_factory=list)  # per call: run | approval | client (runtime/toolbox.py)
    # No tool calls, but the database refused the turn's end: the workflow records it.
    answered: bool = False


@dataclass
class ToolInput:
    session_id: str
    message_id: str
    step_id: str
    call: dict[str, str]
    waited: bool = False  # the call waited for an answer (runtime/waits.py): settle it by that


@dataclass
class PauseInput:
    """A step with calls that wait: store them and ask (the others ran already)."""

    session_id: str
    message_id: str
    step_id: str
    iteration: int
    started_at_seq: int
    calls: list[dict[str, str]]
    kinds: list[str]
    outputs: list[ToolOutput | None]  # the results of the calls that ran (None for the others)


@dataclass
class PauseResult:
    waiting: list[str]  # the call ids waiting for an answer
    timeout_seconds: float | None  # APPROVAL_TIMEOUT_SECONDS of the worker that asked


@dataclass
class WaitInput:
    session_id: str
    message_id: str
    step_id: str


@dataclass
class ToolOutput:
    result: Any = None
    error: str | None = None


@dataclass
class ToolResultsInput:
    session_id: str
    message_id: str
    step_id: str
    calls: list[dict[str, str]]
    outputs: list[ToolOutput]


@dataclass
class FinishInput:
    session_id: str
    message_id: str | None  # None: no turn ran, only queued messages were dropped
    status: str  # completed | failed | cancelled
    outcome: dict[str, Any] | None = None  # completed: reason and iterations
    code: str | None = None  # failed
    message: str | None = None  # failed: the error; cancelled: the reason
    dropped: list[str] = field(default_factory=list)  # queued message ids that will not run


# ApplicationError types raised by activities that the workflow treats specially.
SESSION_GONE = "session_gone"
DATABASE_UNAVAILABLE = "database_unavailable"  # retryable; its message: "the database was unavailable (<reason>)"
# Non-retryable: an end's write (a turn's, a pipeline run's) failed other than on the
# database (a bug, a bad value); the workflow tries it a bounded number of times.
END_FAILED = "end_failed"


# --- pipeline runs ---------------------------------------------------------------------

PIPELINE_RUN_PREFIX = "pipeline-run:"


def pipeline_workflow_id(run_id: str) -> str:
    return PIPELINE_RUN_PREFIX + run_id


@dataclass
class RunPlan:
    """A stored run as its workflow needs it."""

    pipeline_name: str
    steps: list[dict[str, Any]]  # the definitions: name, agent, depends_on, input
    entries: list[dict[str, Any]]  # the run's progress entries, in definition order
    input: str | None
    owner_id: str | None


@dataclass
class PipelineStep:
    run_id: str
    name: str
    agent: str
    text: str
    title: str
    session_id: str  # chosen by the workflow, so a retried step finds what it made
    message_id: str
    owner_id: str | None


@dataclass
class PipelineStepOutcome:
    status: str  # completed | failed | cancelled
    output: str = ""
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    error: dict[str, str] | None = None


@dataclass
class RunProgress:
    run_id: str
    entries: list[dict[str, Any]]
    status: str | None = None  # set when the run ends
    output: str | None = None
