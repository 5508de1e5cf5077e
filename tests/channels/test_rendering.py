import pytest

from channels.models import Template
from channels.preview import preview
from channels.rendering import RenderError, build_context, render_string, render_template
from customers.models import Customer


def ctx(**extra):
    customer = {
        "external_id": "c1",
        "email": "ann@example.com",
        "first_name": "<b>Ann</b>",
        "last_name": "Lee",
        "fields": {"tier": "gold", "_hidden": "psst", "kids": ["Bo", "Cy"]},
    }
    return build_context(customer=customer, extra=extra)


def render(source: str, html: bool = False, **extra) -> str:
    return render_string(source=source, context=ctx(**extra), field="text", html=html)


def test_it_renders_customer_event_promo_and_flow():
    out = render(
        "{{ customer.full_name }} {{ customer.fields.tier }} {{ event.total|floatformat:2 }} "
        "{{ promo_code }} {{ flow.name }} {{ customer.fields.kids|join:'+' }}",
        event={"total": 12.5},
        promo_code="SAVE10",
        flow={"name": "Welcome"},
    )
    assert out == "<b>Ann</b> Lee gold 12.50 SAVE10 Welcome Bo+Cy"


def test_it_autoescapes_html_only():
    assert render("<p>{{ customer.first_name }}</p>", html=True) == "<p>&lt;b&gt;Ann&lt;/b&gt;</p>"
    assert render("{{ customer.first_name }}") == "<b>Ann</b>"


def test_settings_are_not_reachable():
    assert render("[{{ settings.SECRET_KEY }}][{{ SECRET_KEY }}]") == "[][]"


@pytest.mark.parametrize(
    "source, message",
    [
        ("{{ customer._meta }}", "may not begin with underscores"),
        ("{{ customer.fields.__class__ }}", "may not begin with underscores"),
        ("{% load static %}", "'load'"),
        ('{% include "x.html" %}', "'include'"),
        ('{% extends "base.html" %}', "'extends'"),
        ("{% debug %}", "'debug'"),
        ("{% ssi '/etc/passwd' %}", "'ssi'"),
        ("{% url 'admin:index' %}", "'url'"),
        ("{% lorem 99999 w %}", "'lorem'"),
        ("{{ customer|pprint }}", "pprint"),
        ('{{ customer.email|stringformat:"99999999s" }}', "stringformat"),
        ("{{ customer.email|ljust:100000000 }}", "ljust filter takes at most"),
        ("{{ 1.5|floatformat:100000000 }}", "floatformat filter takes at most"),
        ("{% if %}", "text:"),
    ],
)
def test_it_refuses_dangerous_templates_with_a_readable_reason(source, message):
    with pytest.raises(RenderError, match=message) as info:
        render(source)
    assert str(info.value).startswith("text: ")


def test_private_keys_are_dropped_and_dict_methods_cannot_mutate():
    assert render("[{% for k in customer.fields %}{{ k }},{% endfor %}]") == "[tier,kids,]"
    # A zero-argument method of the data is harmless: the data is read-only.
    assert render("{{ customer.fields.clear }}{{ customer.fields.tier }}") == "gold"
    assert render("{{ customer.fields.kids.pop }}{{ customer.fields.kids|length }}") == "2"


def test_model_instances_become_plain_text():
    # Even if a caller slips a model instance into the context, only its str() is reachable.
    out = render(
        "{{ event.obj }}|{{ event.obj.pk }}|{{ event.obj.delete }}", event={"obj": Customer(external_id="x")}
    )
    assert out == "x||"


def test_dictsort_cannot_reach_private_attributes():
    # Django's dictsort refuses private paths and renders nothing.
    assert render('[{{ customer.fields.kids|dictsort:"__class__" }}]') == "[]"


def test_json_filter_serializes_context_data():
    assert render("{{ customer.fields|json }}") == '{"tier": "gold", "kids": ["Bo", "Cy"]}'


def test_it_renders_an_email_template():
    template = Template(
        channel="email",
        subject="Hi {{ customer.first_name }}",
        text="",
        html="<p>{{ customer.last_name }} &amp; {{ customer.first_name }}</p>",
    )
    out = render_template(template=template, context=ctx())
    # Text falls back to the HTML without tags.
    assert out == {
        "subject": "Hi <b>Ann</b>",
        "text": "Lee & <b>Ann</b>",
        "html": "<p>Lee &amp; &lt;b&gt;Ann&lt;/b&gt;</p>",
    }


def test_an_empty_email_is_an_error():
    with pytest.raises(RenderError, match="neither text nor HTML"):
        render_template(template=Template(channel="email", subject="s", text="{{ nothing }}"), context=ctx())


def test_a_subject_cannot_inject_headers():
    with pytest.raises(RenderError, match="subject"):
        render_template(
            template=Template(channel="email", subject="a{{ event.x }}b", text="t"),
            context=ctx(event={"x": "\nBcc: x"}),
        )


def test_it_renders_sms_and_pushes():
    assert render_template(
        template=Template(channel="sms", text=" Code {{ promo_code }} "), context=ctx(promo_code="P1")
    ) == {"text": "Code P1"}
    push = Template(
        channel="web_push",
        subject="T {{ flow.name }}",
        text="B",
        url="https://shop.example/{{ customer.external_id }}",
    )
    assert render_template(template=push, context=ctx(flow={"name": "F"})) == {
        "title": "T F",
        "body": "B",
        "data": {"url": "https://shop.example/c1"},
    }
    with pytest.raises(RenderError, match="SMS text is empty"):
        render_template(template=Template(channel="sms", text="{{ missing }}"), context=ctx())


def test_it_renders_a_webhook_without_escaping():
    hook = Template(
        channel="webhook",
        method="PUT",
        url="https://crm.example/customers/{{ customer.external_id|urlencode }}",
        headers={"X-Tier": "{{ customer.fields.tier }}"},
        text='{"name": {{ customer.first_name|json }}}',
    )
    out = render_template(template=hook, context=ctx())
    assert out == {
        "method": "PUT",
        "url": "https://crm.example/customers/c1",
        "headers": {"X-Tier": "gold"},
        "body": '{"name": "<b>Ann</b>"}',
    }


def test_a_webhook_needs_an_http_url_and_single_line_headers():
    with pytest.raises(RenderError, match="url"):
        render_template(
            template=Template(channel="webhook", url="file:///etc/passwd", text="x"), context=ctx()
        )
    with pytest.raises(RenderError, match="headers.X"):
        render_template(
            template=Template(
                channel="webhook", url="https://a.example", headers={"X": "a{{ event.v }}"}, text=""
            ),
            context=ctx(event={"v": "\r\nEvil: 1"}),
        )


def test_the_caller_cannot_replace_the_customer():
    context = build_context(customer={"external_id": "real"}, extra={"customer": {"external_id": "fake"}})
    assert context["customer"]["external_id"] == "real"


@pytest.mark.django_db
def test_preview_renders_for_a_customer_instance():
    customer = Customer.objects.create(external_id="p1", email="p@example.com", first_name="Pia")
    template = Template.objects.create(
        slug="t", name="t", channel="email", subject="Hi {{ customer.first_name }}", text="{{ promo_code }}"
    )
    assert preview(template=template, customer=customer) == {
        "subject": "Hi Pia",
        "text": "PREVIEW-CODE",
        "html": "",
    }
    template.text = "{% load x %}"
    with pytest.raises(RenderError, match="'load'"):
        preview(template=template, customer=customer)
