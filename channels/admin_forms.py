"""The admin's template form: the check on save (channels.templates.
template_problems, which the API runs too), each problem on its field, with
tracking and translations as plain form fields rather than JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join

from channels.models import Template
from channels.templates import template_problems
from channels.translations import PARTS
from customers.locales import normalize_locale

# Rows of a translations table: the stored ones and this many empty ones.
EXTRA_TRANSLATION_ROWS = 2
MAX_TRANSLATION_ROWS = 200
TRACK_CHOICES = [("", "as the purpose says (marketing: yes, service: no)"), ("yes", "yes"), ("no", "no")]


class TranslationsWidget(forms.Widget):
    """One row per translation (locale, subject, text, html) and empty rows
    to add some; a row left empty is no translation. The data comes back as
    a list of (locale, parts) rows, so the field can name a repeated locale."""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer=None) -> str:
        # Rendered here, not by a form template: the form renderer does not
        # read the project's templates/ directory.
        rows = self.rows(value)
        cell = '<td><input type="text" name="{}" value="{}" size="{}" aria-label="{} of translation {}"></td>'
        area = (
            '<td><textarea name="{}" rows="3" cols="30" aria-label="{} of translation {}">{}</textarea></td>'
        )
        body = format_html_join(
            "",
            "<tr>{}{}{}{}</tr>",
            (
                (
                    format_html(cell, f"{name}-{i}-locale", row["locale"], 8, "Locale", i + 1),
                    format_html(cell, f"{name}-{i}-subject", row["subject"], 30, "Subject", i + 1),
                    format_html(area, f"{name}-{i}-text", "Text", i + 1, row["text"]),
                    format_html(area, f"{name}-{i}-html", "HTML", i + 1, row["html"]),
                )
                for i, row in enumerate(rows)
            ),
        )
        return format_html(
            '<input type="hidden" name="{}-count" value="{}"><table class="translations-table"><thead><tr>'
            "<th>Locale (e.g. de, pt-BR)</th><th>Subject</th><th>Text</th><th>HTML</th></tr></thead>"
            "<tbody>{}</tbody></table>"
            '<p class="help">Save to get more empty rows; empty a whole row to remove its translation.</p>',
            name,
            len(rows),
            body,
        )

    @staticmethod
    def rows(value: Any) -> list[dict]:
        if isinstance(value, Mapping):
            rows = [(locale, parts) for locale, parts in value.items()]
        elif isinstance(value, list):
            rows = value
        else:
            rows = []
        rows = [
            {
                "locale": locale,
                **{p: (parts.get(p) or "") if isinstance(parts, Mapping) else "" for p in PARTS},
            }
            for locale, parts in rows
        ]
        return rows + [{"locale": "", **dict.fromkeys(PARTS, "")} for _ in range(EXTRA_TRANSLATION_ROWS)]

    def value_from_datadict(self, data, files, name: str) -> list[tuple[str, dict]]:
        try:
            count = min(int(data.get(f"{name}-count") or 0), MAX_TRANSLATION_ROWS)
        except ValueError:
            count = 0
        rows = []
        for index in range(count):
            locale = (data.get(f"{name}-{index}-locale") or "").strip()
            parts = {part: data.get(f"{name}-{index}-{part}") or "" for part in PARTS}
            if locale or any(value.strip() for value in parts.values()):
                rows.append((locale, parts))
        return rows

    def value_omitted_from_data(self, data, files, name: str) -> bool:
        return f"{name}-count" not in data


class TranslationsField(forms.Field):
    """The rows of TranslationsWidget → {"de": {"subject", "text", "html"}};
    locales written in canonical case (pt-br → pt-BR)."""

    widget = TranslationsWidget

    def to_python(self, value: Any) -> dict:
        if isinstance(value, Mapping):
            return dict(value)
        result: dict[str, dict] = {}
        errors = []
        for locale, parts in value or []:
            try:
                tag = normalize_locale(locale)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if not tag:
                errors.append("each translation needs a locale (e.g. de, pt-BR)")
            elif tag in result:
                errors.append(f"{tag} is there twice")
            else:
                result[tag] = parts
        if errors:
            raise forms.ValidationError(errors)
        return result


class TemplateForm(forms.ModelForm):
    track_opens = forms.ChoiceField(
        choices=TRACK_CHOICES, required=False, label="Track opens", help_text="email: a 1×1 image"
    )
    track_clicks = forms.ChoiceField(
        choices=TRACK_CHOICES,
        required=False,
        label="Track clicks",
        help_text="email: links become redirects through this site. "
        "MAESTRA_EMAIL_TRACKING=false turns tracking off everywhere.",
    )
    translations = TranslationsField(
        required=False,
        help_text="The text for customers of that locale (exact, else its language, else the default "
        "text above). A translation is the whole text: parts left empty are empty.",
    )

    class Meta:
        model = Template
        # TemplateAdmin.fieldsets decide the form's fields; these are the ones
        # the check reads.
        fields = ["channel", "purpose", "subject", "text", "html", "translations", "url", "headers"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        track = self.instance.track if isinstance(self.instance.track, Mapping) else {}
        for part in ("opens", "clicks"):
            if part in track and f"track_{part}" in self.fields:
                self.fields[f"track_{part}"].initial = "yes" if track[part] else "no"

    def clean(self):
        cleaned = super().clean()
        if "track_opens" in self.fields:
            track = {
                part: cleaned.get(f"track_{part}") == "yes"
                for part in ("opens", "clicks")
                if cleaned.get(f"track_{part}")
            }
            # Not a model field of this form: set on the instance directly.
            self.instance.track = cleaned["track"] = track or None
        for field, message in template_problems(cleaned).items():
            name, _, header = field.partition(".")
            if name == "track":
                name = f"track_{header}" if f"track_{header}" in self.fields else "track_opens"
                header = ""
            self.add_error(
                name if name in self.fields else None, f"{header}: {message}" if header else message
            )
        return cleaned
