"""A workflow for tests/runtime/test_temporal_sandbox.py, in a module of its own: the
sandbox loads a workflow's module again for each run, so it imports only what it needs."""

import gc

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tests.runtime.sandbox_held import HELD  # the test's own list, not a sandbox copy


@workflow.defn
class DropHeldObjects:
    @workflow.run
    async def run(self) -> int:
        dropped = len(HELD)
        HELD.clear()
        gc.collect()  # as it can happen on any thread: their finalizers run in this workflow task
        return dropped
