"""Password hashing with argon2 (argon2-cffi's defaults follow RFC 9106).

One hash or check takes 50-200 ms of CPU and 64 MiB of memory, so it never runs on the
event loop, where it would stall every request and stream of the process for that long:
`hash_password` and `verify_password` are coroutines that run it on a small thread pool
of its own (argon2-cffi releases the GIL while hashing). The pool is small so that a burst
of logins queues for a core instead of taking all the memory and starving the loop."""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import PASSWORD_MIN_LENGTH

_hasher = PasswordHasher()

MIN_LENGTH = PASSWORD_MIN_LENGTH  # sign-up's rule (the admin's is checked with the settings)


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the account does not exist keeps the timing the same,
    so response times do not tell which emails have accounts. Made on first use, not at
    import: a hash costs every process that never checks a password ~0.15 s at start-up."""
    return _hasher.hash("not-a-real-password")


# One hash at a time per core: each already spreads over up to `parallelism` (4) threads,
# so more at once would add memory, not throughput.
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


async def _off_loop(function, *args):
    return await asyncio.get_running_loop().run_in_executor(_pool, function, *args)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await _off_loop(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await _off_loop(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """Only reads the parameters in the hash: cheap, fine on the loop."""
    return _hasher.check_needs_rehash(password_hash)
