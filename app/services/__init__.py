"""Domain logic and data access, kept out of the HTTP handlers (app/api)."""
