"""Translations between the core data model and each API dialect's shapes.

Only shapes live here: no storage and no HTTP. The Everruns /v1 shapes are the core's
own (app/api); the Agent Runtime and AgentSpec dialects are mapped in these modules.
"""
