"""E-mail validation: two shortcuts inside email-validator that change speed, not outcomes.

``EmailStr`` validates with email-validator. A 100,000-lead import spends most of its
validation there (bench/README.md), in two places:

- **The domain check**, character by character against the IDNA rules, repeated for every
  address of the same company (such an import holds ~18,000 domains). It is a pure function
  of the domain and the options, so its result is cached; a domain that fails is not cached
  (exceptions never are) and is checked again each time.
- **Splitting the address** into display name, local part and domain, which walks the
  address one character at a time (quotes, escapes, combining characters). For an ASCII
  address without a quote or an angle bracket that walk can only stop at the first ``@``,
  so such an address is split there directly; any other goes through the library's walk.

Both are installed where ``validate_email`` looks them up (its module's globals), so the
library's own rules, normalisation and messages stay in force for everything else.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
DOMAIN_CACHE_SIZE = 16_384

Split = tuple[str | None, str, str, bool, str]


def plain_split(library_split: Callable[[str], Split]) -> Callable[[str], Split]:
    """``library_split`` with the shortcut for plain addresses in front of it."""

    @functools.wraps(library_split)
    def split_email(email: str) -> Split:
        # ASCII holds no combining character, and without '"' or '<' nothing is quoted and
        # there is no display name: the library's walk stops at the first '@'.
        if email.isascii() and "@" in email and '"' not in email and "<" not in email:
            local, _, domain = email.partition("@")
            return None, local, local, False, domain
        return library_split(email)

    split_email.library_split = library_split  # type: ignore[attr-defined]
    return split_email


def _wrap_in_validator(name: str, wrap: Callable[[Any], Any], marker: str, without_it: str) -> Any:
    """Wrap the function ``name`` where ``validate_email`` looks it up (its module's
    globals), once: a wrapped one carries ``marker``. Returns the installed function, or None
    if this version of email-validator is laid out differently (then it runs as it is)."""
    module = importlib.import_module("email_validator.validate_email")
    function = getattr(module, name, None)
    if function is None:
        log.warning("email-validator has no %s; %s", name, without_it)
        return None
    if not hasattr(function, marker):
        function = wrap(function)
        setattr(module, name, function)
    return function


cached_domain_check = _wrap_in_validator(
    "validate_email_domain_name",
    functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE),
    "cache_info",
    "domains not cached",
)
installed_split = _wrap_in_validator(
    "split_email", plain_split, "library_split", "addresses walked in full"
)
