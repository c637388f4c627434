"""Objects a test hands to a workflow running in Temporal's sandbox. Imported with
`workflow.unsafe.imports_passed_through()`, so the sandbox and the test share this list."""

HELD: list[object] = []
