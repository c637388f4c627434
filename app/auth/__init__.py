"""Authentication and authorization: who is calling (principal), what they may call
(policy: scopes per route), and what they may see (ownership, in full mode)."""
