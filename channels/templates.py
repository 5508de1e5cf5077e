"""Templates: the check every save goes through, and saving and deleting
them. The admin and the REST API both call these, so a template is checked
the same way and every change leaves the same audit entry (maestra/audit):

- `template.created` (data: channel, purpose),
- `template.changed` (data: the names of the fields that changed, never
  their content: a template's text is not the audit log's business, and a
  webhook's secret must never be copied anywhere),
- `template.deleted` (data: channel, purpose; the entry keeps the slug in
  its subject_repr after the row is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from channels.models import Template
from channels.rendering import (
    sample_render_problem,
    sources_render_problem,
    template_sources,
    template_syntax_problem,
)
from channels.tracking import track_problems
from channels.translations import translation_sources, translations_shape_problems
from maestra.audit import log as audit
from maestra.errors import ApplicationError

# A template's fields as the API shows them (in this order), and the ones a
# change of which is recorded by name: all of them, plus a webhook's secret,
# which only goes in.
TEMPLATE_FIELDS = (
    "slug",
    "name",
    "channel",
    "purpose",
    "subject",
    "text",
    "html",
    "track",
    "translations",
    "method",
    "url",
    "headers",
)
AUDITED_FIELDS = (*TEMPLATE_FIELDS, "secret")


class TemplateSlugTaken(ApplicationError):
    """Another template has this slug (two saves raced past the form's or the
    serializer's uniqueness check)."""

    status = 409
    field = "slug"

    def __init__(self) -> None:
        super().__init__("a template with this slug already exists")


def template_problems(template: Any) -> dict[str, str]:
    """What is wrong with a template, by field ("text", "headers.X-Tier"): the
    check when one is saved (admin form, API). Every source compiles (no
    syntax error, no unknown tag or filter), webhook headers are texts, the
    channel has the parts it needs, and the template renders for the sample
    customer within the render budget, as the flow validation renders it."""
    get = template.get if isinstance(template, Mapping) else lambda name: getattr(template, name, None)
    problems: dict[str, str] = {}
    headers = get("headers")
    if headers is not None and not isinstance(headers, dict):
        problems["headers"] = "must be an object of header names and their texts"
    for field, source, html in template_sources(template):
        if not isinstance(source, str):
            problems[field] = "must be text"
        elif problem := template_syntax_problem(source, html=html):
            problems[field] = f"template syntax error: {problem}"
    problems.update(track_problems(get("track"), channel=get("channel")))
    translations = get("translations")
    problems.update(translations_shape_problems(translations))
    if translations and get("channel") == "webhook":
        problems.setdefault("translations", "webhook templates have no translations")
    for _locale, sources in translation_sources(translations):
        for field, source, html in sources:
            if not isinstance(source, str):
                problems.setdefault(field, "must be text")
            elif problem := template_syntax_problem(source, html=html):
                problems.setdefault(field, f"template syntax error: {problem}")
    channel = get("channel")
    if channel == "webhook" and not (get("url") or "").strip():
        problems.setdefault("url", "a webhook template needs a url")
    if channel == "email" and not ((get("text") or "").strip() or (get("html") or "").strip()):
        problems.setdefault("text", "an email template needs a text or an html body")
    if channel == "sms" and not (get("text") or "").strip():
        problems.setdefault("text", "an SMS template needs a text")
    if not problems and (found := sample_render_problem(template)):
        field, problem = found
        problems[field] = f"does not render for a sample customer: {problem}"
    # Each translation on a budget of its own: a message renders one of them.
    for _locale, sources in translation_sources(translations) if not problems else []:
        if found := sources_render_problem(sources):
            field, problem = found
            problems[field] = f"does not render for a sample customer: {problem}"
    return problems


def _describe(template: Template) -> str:
    return f"template {template.slug}"


def save_template(*, template: Template, user=None, actor: str = "") -> Template:
    """Create `template` (unsaved) or save the changes made to it, stamped
    `updated_at` now, with its audit entry in the same transaction: a change
    that changed no field writes none. `user` is the staff member, `actor`
    says who acted without one ("api key <prefix>"). The caller has run
    `template_problems`. Raises TemplateSlugTaken."""
    try:
        with transaction.atomic():
            before = None
            if template.pk is not None:
                before = Template.objects.filter(pk=template.pk).values(*AUDITED_FIELDS).first()
            template.updated_at = timezone.now()
            template.save()
            who = {"user": user, "actor": actor, "subject": template, "subject_repr": _describe(template)}
            if before is None:
                audit.log(
                    "template.created", **who, data={"channel": template.channel, "purpose": template.purpose}
                )
            elif changed := [name for name in AUDITED_FIELDS if before[name] != getattr(template, name)]:
                audit.log("template.changed", **who, data={"fields": changed})
    except IntegrityError:
        raise TemplateSlugTaken from None
    return template


def delete_templates(*, templates: Iterable[Template], user=None, actor: str = "") -> int:
    """Delete templates (one, or the admin's selection), each with its audit
    entry, in one transaction. Their messages stay, without the link.
    Returns how many."""
    templates = list(templates)
    with transaction.atomic():
        audit.log_many(
            audit.entry(
                "template.deleted",
                user=user,
                actor=actor,
                subject=template,
                subject_repr=_describe(template),
                data={"channel": template.channel, "purpose": template.purpose},
            )
            for template in templates
        )
        Template.objects.filter(pk__in=[template.pk for template in templates]).delete()
    return len(templates)
