"""Message reasons in words (flows/message_reasons.py) on the monitoring
page, the code as the tooltip; every reason code of the outbox has words."""

import pytest
import time_machine

from channels.admin import ReasonFilter
from flows.message_reasons import message_reason_text
from tests.flows.test_admin_monitoring import NOW, URL, world  # noqa: F401 (world: a fixture)


@pytest.mark.django_db
def test_message_reasons_read_as_words_with_the_code_as_the_tooltip(admin_client, world):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(URL).content.decode()
    assert 'title="no_address">The customer has no address for this channel.</span>' in page
    assert (
        'title="provider_error: 550 mailbox unavailable">The provider refused the message.'
        " (550 mailbox unavailable)</span>"
    ) in page
    # The reason filter's suggestions name each code in words.
    assert '<option value="frequency_cap">The customer already got as many messages' in page


def test_every_message_reason_code_of_the_outbox_has_words():
    for code, _label in ReasonFilter.CODES:
        assert message_reason_text(code) != code, code
    assert message_reason_text("something_new: detail") == "something_new: detail"
