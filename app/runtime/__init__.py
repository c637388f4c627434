"""The agent runtime: capabilities and tools, provider adapters, and the turn loop."""
