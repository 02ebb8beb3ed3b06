"""E-mail validation: a cache of email-validator's domain check.

``EmailStr`` validates with email-validator, which checks the domain part character by
character against the IDNA rules: about two thirds of validating an address, repeated for
every address of the same company (a 100,000-lead import holds ~18,000 domains). The check
is a pure function of the domain and the options, so its result is cached. It is installed
where ``validate_email`` looks it up (its module's globals), so the library's own rules,
normalisation and messages stay in force; a domain that fails is not cached (exceptions
never are) and is checked again each time.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)
DOMAIN_CACHE_SIZE = 16_384


def cache_domain_checks() -> Any:
    """Install the cache (once); returns the cached check, or None if this version of
    email-validator is laid out differently (then every address is checked in full)."""
    module = importlib.import_module("email_validator.validate_email")
    check = getattr(module, "validate_email_domain_name", None)
    if check is None:
        log.warning("email-validator has no validate_email_domain_name; domains not cached")
        return None
    if not hasattr(check, "cache_info"):
        check = functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)(check)
        setattr(module, "validate_email_domain_name", check)  # noqa: B010  (not typed)
    return check


cached_domain_check = cache_domain_checks()
