"""Template preview in the admin: rendered for a chosen customer (or a sample
one) exactly as a send would render it; a RenderError is shown as text.
Customer data is untrusted: every part is escaped, and the HTML part runs no
script (a sandboxed iframe on its own URL with its own policy)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from channels.models import Template
from customers.models import Customer
from tests.channels.test_template_checks import NESTED_LOOPS


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)


@pytest.fixture
def anna(db):
    return Customer.objects.create(
        external_id="anna-1",
        email="anna@example.com",
        phone="+4915100000001",
        first_name="Anna",
        fields={"tier": "gold"},
    )


def template(**fields) -> Template:
    defaults = {"slug": "t", "name": "T", "channel": "email", "subject": "Hi", "text": "Hello"}
    return Template.objects.create(**{**defaults, **fields})


def preview_url(tpl: Template) -> str:
    return reverse("admin:channels_template_preview", args=[tpl.pk])


@pytest.mark.django_db
def test_it_renders_an_email_for_the_chosen_customer(admin_client, anna):
    tpl = template(
        subject="Hello {{ customer.first_name }}",
        text="Your tier: {{ customer.fields.tier }}",
        html="<p>Hi {{ customer.first_name }} <b>{{ customer.fields.tier }}</b></p>",
    )

    for query in ("anna-1", "ANNA@example.com", "+4915100000001"):
        response = admin_client.get(preview_url(tpl), {"customer": query})
        assert response.status_code == 200
        parts = {name: text for name, text, _html in response.context["parts"]}
        assert parts == {
            "subject": "Hello Anna",
            "text": "Your tier: gold",
            "html": "<p>Hi Anna <b>gold</b></p>",
        }
        assert response.context["chosen_customer"] == anna
    page = response.content.decode()
    # The HTML part is shown rendered in a sandboxed iframe that loads it from
    # its own URL, and as escaped source.
    html_url = reverse("admin:channels_template_preview_html", args=[tpl.pk]) + "?customer=%2B4915100000001"
    assert f'<iframe class="template-preview-html" sandbox="" src="{html_url}"' in page
    assert "&lt;p&gt;Hi Anna &lt;b&gt;gold&lt;/b&gt;&lt;/p&gt;" in page
    html = admin_client.get(html_url)
    assert (html.status_code, html["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert html.content.decode() == "<p>Hi Anna <b>gold</b></p>"


@pytest.mark.django_db
def test_without_a_customer_it_renders_for_a_sample_and_an_unknown_one_is_said(admin_client):
    tpl = template(channel="sms", subject="", text="Hi {{ customer.first_name }}, code {{ promo_code }}")

    sample = admin_client.get(preview_url(tpl))
    unknown = admin_client.get(preview_url(tpl), {"customer": "nobody"})

    assert [(n, t) for n, t, _ in sample.context["parts"]] == [("text", "Hi Alex, code PREVIEW-CODE")]
    assert "a sample customer" in sample.content.decode()
    assert unknown.context["parts"] == []
    assert "No customer has the external id, email or phone “nobody”" in unknown.content.decode()


@pytest.mark.django_db
def test_it_shows_the_render_error_text(admin_client, anna):
    broken = template(slug="broken", subject="{{ customer.first_name|nosuchfilter }}")
    empty_sms = template(slug="empty", channel="sms", subject="", text="   ")

    first = admin_client.get(preview_url(broken), {"customer": "anna-1"})
    second = admin_client.get(preview_url(empty_sms), {"customer": "anna-1"})

    assert first.status_code == 200
    assert first.context["render_error"].startswith("subject:")
    assert "nosuchfilter" in first.content.decode()
    assert second.context["render_error"] == "text: the SMS text is empty"
    assert "The template cannot be rendered: text: the SMS text is empty" in second.content.decode()


@pytest.mark.django_db
def test_it_renders_webhook_and_push_templates(admin_client, anna):
    push = template(slug="push", channel="web_push", subject="Hey {{ customer.first_name }}", text="Body")
    hook = template(
        slug="hook",
        channel="webhook",
        subject="",
        url="https://crm.example.com/{{ customer.external_id }}",
        headers={"X-Tier": "{{ customer.fields.tier }}"},
        text='{"email": "{{ customer.email }}"}',
    )

    def parts(tpl: Template) -> dict[str, str]:
        response = admin_client.get(preview_url(tpl), {"customer": "anna-1"})
        return {name: text for name, text, _html in response.context["parts"]}

    hook_parts, push_parts = parts(hook), parts(push)

    assert hook_parts["url"] == "https://crm.example.com/anna-1"
    assert hook_parts["method"] == "POST"
    assert '"X-Tier": "gold"' in hook_parts["headers"]
    assert hook_parts["body"] == '{"email": "anna@example.com"}'
    assert push_parts["title"] == "Hey Anna" and push_parts["body"] == "Body"


@pytest.mark.django_db
def test_the_change_page_links_to_the_preview_and_an_unknown_template_is_a_404(admin_client):
    tpl = template()
    change = admin_client.get(reverse("admin:channels_template_change", args=[tpl.pk])).content.decode()
    assert preview_url(tpl) in change
    assert admin_client.get(reverse("admin:channels_template_preview", args=[9999])).status_code == 404


@pytest.mark.django_db
def test_the_preview_needs_the_template_view_and_customer_view_permissions(anna, django_user_model):
    tpl = template()
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(preview_url(tpl)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(preview_url(tpl)).status_code == 200
    # Looking a customer up needs the right to see customers.
    assert client.get(preview_url(tpl), {"customer": "anna-1"}).status_code == 403


XSS = "<img src=x onerror=alert(1)>"


@pytest.mark.django_db
def test_customer_data_is_escaped_in_every_part(admin_client):
    Customer.objects.create(
        external_id="eve", first_name=XSS, fields={"quote": '"></iframe><script>alert(2)</script>'}
    )
    tpl = template(
        subject="Hi {{ customer.first_name }}",
        text="{{ customer.first_name }} {{ customer.fields.quote }}",
        # A marketer's |safe must not reach the admin page either.
        html="<p>{{ customer.first_name|safe }}</p>{{ customer.fields.quote|safe }}",
    )

    page = admin_client.get(preview_url(tpl), {"customer": "eve"}).content.decode()

    assert XSS not in page and "<script>alert(2)" not in page
    assert '<pre class="preview-subject">Hi &lt;img src=x onerror=alert(1)&gt;</pre>' in page
    assert (
        "&lt;img src=x onerror=alert(1)&gt; &quot;&gt;&lt;/iframe&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
        in page
    )
    # The rendered HTML (the marketer chose |safe) is only ever on its own URL.
    html = admin_client.get(
        reverse("admin:channels_template_preview_html", args=[tpl.pk]), {"customer": "eve"}
    )
    assert html.content.decode() == f'<p>{XSS}</p>"></iframe><script>alert(2)</script>'


@pytest.mark.django_db
def test_the_html_part_has_a_policy_without_scripts_and_may_be_framed_by_the_admin_only(admin_client):
    tpl = template(html="<p>Hi</p>")

    html = admin_client.get(reverse("admin:channels_template_preview_html", args=[tpl.pk]))

    policy = html["Content-Security-Policy"]
    assert policy == (
        "default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:; "
        "frame-ancestors 'self'; sandbox"
    )
    assert "script-src" not in policy  # default-src 'none' covers scripts
    assert html["X-Frame-Options"] == "SAMEORIGIN"
    assert html["Referrer-Policy"] == "no-referrer"


@pytest.mark.django_db
def test_the_html_part_needs_the_same_permissions_and_answers_a_render_error_as_text(anna, django_user_model):
    tpl = template(html="<p>{{ customer.first_name }}</p>")
    broken = template(slug="broken", html="<p>{{ 1.5|floatformat:900 }}</p>")
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    html_url = reverse("admin:channels_template_preview_html", args=[tpl.pk])
    assert client.get(html_url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(html_url).content.decode() == "<p>Alex</p>"
    assert client.get(html_url, {"customer": "anna-1"}).status_code == 403

    error = client.get(reverse("admin:channels_template_preview_html", args=[broken.pk]))
    assert (error.status_code, error["Content-Type"]) == (422, "text/plain; charset=utf-8")
    assert error.content.decode() == "html: the floatformat filter takes at most 200 digits"


@pytest.mark.django_db
def test_preview_and_send_test_answer_with_the_render_error_of_a_template_past_the_budget(admin_client, anna):
    # A row saved before templates were checked on save: the loops would run a
    # million times; the budget stops them at once.
    bomb = template(slug="bomb", text=NESTED_LOOPS)

    preview = admin_client.get(preview_url(bomb), {"customer": "anna-1"})
    sent = admin_client.post(
        reverse("admin:channels_template_send_test", args=[bomb.pk]), {"customer": "anna-1"}
    )

    expected = "text: the loops would run more than 100,000 times in all"
    assert (preview.status_code, preview.context["render_error"]) == (200, expected)
    assert sent.status_code == 200
    message = sent.context["sent_message"]
    assert (message.status, message.reason) == ("failed", f"render_error: {expected}")
    assert f"render_error: {expected}" in sent.content.decode()


@pytest.mark.django_db
def test_preview_answers_with_the_cpu_budget_error(admin_client, monkeypatch):
    from channels import rendering

    ticks = iter(range(1000))
    monkeypatch.setattr(rendering, "cpu_clock", lambda: next(ticks) * 0.4)
    tpl = template(text="{% for c in customer.first_name %}{{ c|upper }}{% endfor %}")

    response = admin_client.get(preview_url(tpl))

    assert response.context["render_error"] == "text: the render used more than its 1 s of CPU time"
