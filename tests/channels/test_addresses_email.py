"""email_is_valid is Django's validate_email, the domain part judged once
per distinct domain of a batch: the same verdict for every address, whatever
was judged before it in the batch."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.addresses import INVALID_ADDRESS, email_is_valid, recipient


def django_verdict(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


domains = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "localhost",
            "EXAMPLE.com",
            "ex_ample.com",
            "-x.com",
            "x",
            "[127.0.0.1]",
            "[::1]",
            "[1.2.3]",
        ]
    ),
    st.from_regex(r"[a-zA-Z0-9\-_.\[\]:]{0,20}", fullmatch=True),
    st.text(max_size=12),
)
users = st.one_of(
    st.sampled_from(["ann", "a.b", ".a", "a..b", '"a b"', "a+b", "Ann_O'Neil", ""]),
    st.from_regex(r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-\"\\ ]{0,12}", fullmatch=True),
    st.text(max_size=8),
)
addresses = st.one_of(
    st.tuples(users, domains).map("@".join),
    st.tuples(users, domains, domains).map("@".join),
    st.text(max_size=20),
    st.emails().map(str),
)


@settings(max_examples=800, deadline=None)
@given(batch=st.lists(addresses, min_size=1, max_size=8))
@example(batch=["a@" + "x" * 318, "a@" + "x" * 317, "ann@localhost", "ann@example.com", "a@b@example.com"])
def test_it_gives_django_s_verdict_for_every_address_of_a_batch(batch):
    judged: dict[str, bool] = {}
    for address in batch:
        assert email_is_valid(address, judged) is django_verdict(address), address


def test_the_outbox_s_recipient_refuses_what_django_refuses_with_or_without_the_cache():
    judged: dict[str, bool] = {}
    for address in ["ann@example.com", "bo@exa mple.com", "ann@example.com.", "x@[127.0.0.1]", "y@localhost"]:
        customer = {"email": address, "email_valid": True}
        expected = (address, "") if django_verdict(address) else (None, INVALID_ADDRESS)
        assert recipient(channel="email", customer=customer, domains=judged) == expected
        assert recipient(channel="email", customer=customer) == expected
