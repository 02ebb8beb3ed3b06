"""The cache of email-validator's domain check changes speed, not outcomes."""

from __future__ import annotations

import importlib

import pytest
from pydantic import EmailStr, TypeAdapter, ValidationError

from app.core.emails import cached_domain_check

EMAIL = TypeAdapter(EmailStr)
ADDRESSES = [
    "ayse.yilmaz@Ornek.COM.tr",
    "AYSE.YILMAZ@ornek.com.tr",
    "user+tag@sub.example.co.uk",
    "kişi@bücher.de",
    "x@xn--bcher-kva.de",
    "a@localhost",
    "a@example.invalid",
    "a@-bad-.com",
    "a@bad..com",
    "a@1.2.3.4",
    "a@[192.168.0.1]",
    "a@" + "d" * 64 + ".com",
    "a@exa_mple.com",
    "a@ex ample.com",
    "@example.com",
    "a@",
    "noat.example.com",
    "a@example",
    "Ayşe <ayse@example.com>",
]


def _outcome(address: str) -> str:
    try:
        return "ok " + EMAIL.validate_python(address)
    except ValidationError as exc:
        return "error " + exc.errors()[0]["msg"]


def test_the_domain_check_is_cached_per_domain() -> None:
    assert cached_domain_check is not None
    before = cached_domain_check.cache_info().hits
    EMAIL.validate_python("ilk@cache-test.example.org")
    EMAIL.validate_python("ikinci@cache-test.example.org")
    assert cached_domain_check.cache_info().hits == before + 1


@pytest.mark.parametrize("address", ADDRESSES)
def test_outcomes_match_the_uncached_check(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cached_domain_check is not None
    cached = [_outcome(address), _outcome(address)]  # the second one from the cache
    # (The package's attribute validate_email is the function; its module is looked up.)
    module = importlib.import_module("email_validator.validate_email")
    monkeypatch.setattr(module, "validate_email_domain_name", cached_domain_check.__wrapped__)
    assert cached == [_outcome(address)] * 2
