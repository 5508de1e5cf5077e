"""One base for every domain error (maestra.errors.ApplicationError) and one
branch in the API's exception handler: each app's errors answer with their
own status and items, and the kernel imports none of them."""

import json

import pytest

from channels.inbound import InvalidProviderEvents
from customers.errors import (
    CustomerServiceError,
    InvalidInput,
    RuleError,
    SegmentNotStatic,
    UnknownPromoPool,
    UnknownSegment,
)
from flows.errors import AudienceUnavailable, DocumentError, LifecycleError, VersionNotFound
from maestra.api.errors import exception_handler
from maestra.errors import ApplicationError, error

NODE_ERROR = {"node": "ask", "field": "config.steps.0.template", "message": "unknown template 'x'"}


def answer(exc: Exception) -> tuple[int, list[dict]]:
    response = exception_handler(exc, {"view": None})
    return response.status_code, json.loads(json.dumps(response.data))["errors"]


@pytest.mark.parametrize(
    "exc, status, errors",
    [
        (CustomerServiceError("bad"), 400, [{"field": "", "message": "bad"}]),
        (
            InvalidInput([{"index": 2, "field": "email", "message": "not an email"}]),
            400,
            [{"index": 2, "field": "email", "message": "not an email"}],
        ),
        (UnknownSegment("vip"), 404, [{"field": "segment", "message": "segment 'vip' does not exist"}]),
        (UnknownPromoPool("w"), 404, [{"field": "pool", "message": "promo pool 'w' does not exist"}]),
        (
            SegmentNotStatic("gold"),
            409,
            [
                {
                    "field": "segment",
                    "message": "segment 'gold' is rule-based; only static segments have members to add or remove",
                }
            ],
        ),
        (RuleError("unknown op 'zz'"), 400, [{"field": "rule", "message": "unknown op 'zz'"}]),
        (
            DocumentError([{"field": "nodes.0.key", "message": "required"}]),
            400,
            [{"field": "nodes.0.key", "message": "required"}],
        ),
        (
            LifecycleError("The draft has 1 error", [NODE_ERROR]),
            409,
            [{"field": "status", "message": "The draft has 1 error"}, NODE_ERROR],
        ),
        (
            VersionNotFound("Flow 3 has no draft"),
            404,
            [{"field": "version", "message": "Flow 3 has no draft"}],
        ),
        (
            AudienceUnavailable("the flow starts on events", field="rule", node="start"),
            409,
            [{"node": "start", "field": "rule", "message": "the flow starts on events"}],
        ),
        (
            InvalidProviderEvents([{"index": 0, "field": "type", "message": "must be one of bounce"}]),
            400,
            [{"index": 0, "field": "type", "message": "must be one of bounce"}],
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_domain_error_answers_with_its_status_and_items(exc, status, errors):
    assert isinstance(exc, ApplicationError)
    assert answer(exc) == (status, errors)


def test_a_rule_error_is_still_a_value_error():
    # Callers that parse input catch ValueError (and str() is the message).
    with pytest.raises(ValueError, match="bad path"):
        raise RuleError("bad path")


def test_the_details_stay_apart_from_what_the_api_sends():
    # The admin shows `message` and then renders `errors` with their node
    # links; the API puts the reason first.
    refusal = LifecycleError("Cannot launch", [NODE_ERROR])
    assert refusal.message == "Cannot launch" and refusal.errors == [NODE_ERROR]
    assert str(refusal) == "Cannot launch"


def test_a_new_application_error_needs_no_change_in_the_kernel():
    class Gone(ApplicationError):
        status = 410
        field = "thing"

    assert answer(Gone("it is gone")) == (410, [{"field": "thing", "message": "it is gone"}])
    assert answer(Gone(errors=[error("a", field="b", index=1)])) == (
        410,
        [{"index": 1, "field": "b", "message": "a"}],
    )
