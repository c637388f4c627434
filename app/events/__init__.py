"""Events: the durable per-session log, the in-process bus, and live delivery (SSE)."""
