"""The Temporal runner mode (RUNNER_MODE=temporal): turns run as Temporal workflows on
`python -m app worker` processes, one long-lived workflow per session.

- types.py: the small JSON payloads that travel between API processes, workflows and
  activities (ids, not rows: an activity reads what it needs from the database);
- workflows.py: SessionWorkflow, deterministic code run in Temporal's sandbox;
- activities.py: the turn's side effects (model calls, tools, writes), built on the
  same Turn as the in-process runner;
- runner.py: the API side (submit, cancel, wait for an outcome);
- worker.py: `python -m app worker`.
"""
