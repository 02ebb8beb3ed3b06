"""The shortcuts inside email-validator (domain cache, plain split) change speed, not
outcomes."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError

from app.core.emails import cached_domain_check, installed_split

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
    '"quoted local"@example.com',
    'a"b@example.com',
    "x@y@example.com",
    "Postmaster@Example.com",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "l" * 65 + "@example.com",
    "a" * 60 + "@" + ("d" * 60 + ".") * 4 + "com",
    "a>b@example.com",
    "a b@example.com",
    "a@exa>mple.com",
    "é@example.com",
    "a\u0301@example.com",
    "a＠example.com",
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
    assert installed_split is not None
    monkeypatch.setattr(module, "split_email", installed_split.library_split)
    assert cached == [_outcome(address)] * 2


def _split(split: Any, text: str) -> Any:
    try:
        return split(text)
    except Exception as exc:  # the same error, with the same message
        return type(exc), str(exc)


# Addresses made of what the split treats specially: quotes, escapes, angle brackets, the
# at-sign and its look-alikes, spaces, a combining accent and non-ASCII letters.
ADDRESS_TEXT = st.one_of(
    st.text(alphabet='ab.@"<>\\ (),:;[]é\u0301＠﹫+-_', max_size=24),
    st.text(alphabet='ab.@"<\\ ', max_size=10),  # mostly ASCII with an at-sign or two
)


@given(ADDRESS_TEXT)
def test_the_plain_split_agrees_with_the_library(text: str) -> None:
    assert installed_split is not None
    assert _split(installed_split, text) == _split(installed_split.library_split, text)
