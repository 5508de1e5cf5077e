"""A node's settings in words on the activity page (flows/settings_words.py):
durations as amounts, rules as sentences, values escaped, no JSON."""

import pytest

from flows.settings_words import duration_words, rule_words, settings_html


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("P1D", "1 day"),
        ("P3D", "3 days"),
        ("PT1H30M", "1 hour 30 minutes"),
        ("P2W", "2 weeks"),
        ("P1M", "1 month"),
        ("P", None),
        ("order", None),
        ("", None),
    ],
)
def test_durations_read_as_amounts(text, words):
    assert duration_words(text) == words


def test_a_rule_reads_as_one_sentence():
    rule = {
        "any": [
            {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
            {
                "not": {
                    "all": [
                        {"field": "points", "op": "gt", "value": 3},
                        {"field": "customer.email", "op": "exists"},
                    ]
                }
            },
            {
                "event": "order_created",
                "op": "count_gte",
                "value": 2,
                "within": "P30D",
                "where": {"field": "event.total", "op": "gt", "value": 100},
            },
            {"event": "page_view", "op": "not_exists", "value": None, "within": None, "where": None},
        ]
    }
    assert rule_words(rule) == (
        "customer.fields.tier is gold"
        " or not (points is greater than 3 and customer.email has a value)"
        " or has done order_created at least 2 times in the last 30 days where event.total is greater than 100"
        " or has never done page_view"
    )
    assert rule_words({"all": []}) == "always"


def test_the_settings_of_a_steps_node_read_as_labelled_values():
    html = settings_html(
        {"relevance": "P1D", "steps": [{"action": "send", "channel": "email", "template": "confirm"}]}
    )
    assert html == (
        '<dl class="settings-words"><dt>Relevant for</dt><dd>1 day</dd><dt>Steps</dt><dd>'
        '<ol class="settings-words"><li><dl class="settings-words"><dt>Action</dt><dd>send</dd>'
        "<dt>Channel</dt><dd>email</dd><dt>Template</dt><dd>confirm</dd></dl></li></ol></dd></dl>"
    )
    assert "{" not in html and '"' not in html.replace('class="settings-words"', "")


def test_values_are_escaped_and_nulls_and_booleans_read_as_words():
    html = settings_html({"title": "<script>x</script>", "period": None, "control": True, "values": ["a", 1]})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<dt>Period</dt><dd>—</dd>" in html
    assert "<dd>yes</dd>" in html
    assert "<dd>a, 1</dd>" in html
    rule_html = settings_html({"rule": {"field": "customer.email", "op": "contains", "value": "<b>"}})
    assert "customer.email contains &lt;b&gt;" in rule_html
