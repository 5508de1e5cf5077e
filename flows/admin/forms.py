"""Admin forms for flows. They only check input; every write goes through
flows/lifecycle/drafts.py (create_flow, save_draft), called by the admin."""

from __future__ import annotations

import json

from django import forms

from flows.document import FORMAT, MAX_NAME_LENGTH, DocumentError, dump_document, parse_document
from flows.lifecycle.state import DRAFT_WRITABLE
from flows.models import Flow

# An uploaded document larger than this is refused before it is read: the
# stable limit of 150 nodes fits in a fraction of it.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


def document_error_messages(error: DocumentError) -> list[str]:
    return [f"{item['field'] or 'document'}: {item['message']}" for item in error.errors]


def empty_document(name: str) -> dict:
    """The document of a new flow created from just a name: nothing to run yet."""
    return {"format": FORMAT, "name": name, "nodes": [], "edges": []}


class FlowDocumentField(forms.CharField):
    """A maestra.flow/1 document typed or pasted as JSON. Cleans to the parsed
    document (a dict, unchanged); a malformed one is a form error listing what
    parse_document found, so nothing is written."""

    widget = forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField flow-document"})

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return dump_document(value, indent=2)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values or not text.strip():
            return None
        try:
            return parse_document(text)
        except DocumentError as error:
            raise forms.ValidationError(document_error_messages(error), code="malformed_document") from None

    def validate(self, value):
        if value is None and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial, data) -> bool:
        # Compare documents, not text: re-indenting is not a change. Key order
        # is part of the document (export returns it as saved), so dumps
        # without sort_keys.
        def canonical(value):
            if value in (None, ""):
                return None
            if isinstance(value, dict):
                return dump_document(value)
            try:
                return dump_document(json.loads(value))
            except ValueError:
                return value

        return canonical(initial) != canonical(data)


class FlowAddForm(forms.ModelForm):
    """New flow: from a name (an empty draft) or from a document, pasted or
    uploaded. `cleaned_data["flow_document"]` is what create_flow receives."""

    name = forms.CharField(
        max_length=MAX_NAME_LENGTH,
        required=False,
        help_text="A new flow with an empty draft. With a document, this name replaces the document's.",
    )
    document = FlowDocumentField(required=False, label="Paste a document", help_text="maestra.flow/1 JSON")
    document_file = forms.FileField(required=False, label="or upload a document", help_text=".json file")

    class Meta:
        model = Flow
        fields = ["name"]

    def clean_document_file(self):
        upload = self.cleaned_data.get("document_file")
        if not upload:
            return None
        if upload.size > MAX_DOCUMENT_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_DOCUMENT_BYTES // 1024} KB")
        raw = upload.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text") from None
        try:
            return parse_document(text)
        except DocumentError as error:
            raise forms.ValidationError(document_error_messages(error), code="malformed_document") from None

    def clean(self):
        cleaned = super().clean()
        name = (cleaned.get("name") or "").strip()
        pasted = cleaned.get("document")
        uploaded = cleaned.get("document_file")
        # Checked on the raw input: a broken document given twice is still given twice.
        pasted_given = bool((self.data.get(self.add_prefix("document")) or "").strip())
        uploaded_given = bool(self.files.get(self.add_prefix("document_file")))
        if pasted_given and uploaded_given:
            raise forms.ValidationError("Paste a document or upload one, not both.")
        if self.errors:
            return cleaned
        document = pasted if pasted is not None else uploaded
        if document is None:
            if not name:
                raise forms.ValidationError("Give the new flow a name, or a document to import.")
            document = empty_document(name)
        elif name:
            # Replacing the value keeps the key where it was in the document.
            document["name"] = name
        cleaned["flow_document"] = document
        return cleaned


class FlowChangeForm(forms.ModelForm):
    """Name and description of the flow, and its draft's document while there
    is a draft. A launched version is never editable: without a draft the
    document field is dropped and the live version is shown read-only."""

    draft_document = FlowDocumentField(
        required=True,
        label="Draft document",
        help_text="maestra.flow/1 JSON. Saving validates it; errors are listed below with links to the nodes.",
    )

    class Meta:
        model = Flow
        fields = ["name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.draft = self.instance.draft if self.instance.pk else None
        # What the admin hands to save_draft after saving the flow (None: the
        # draft stays as it is).
        self.document_to_save: dict | None = None
        if self.draft is None:
            del self.fields["draft_document"]
            return
        field = self.fields["draft_document"]
        field.initial = self.draft.document_json
        if self.instance.status not in DRAFT_WRITABLE:
            # Launching (being frozen) or archived: shown, not editable.
            field.disabled = True
            field.help_text = f"Read-only while the flow is {self.instance.get_status_display().lower()}."

    def clean(self):
        cleaned = super().clean()
        document = cleaned.get("draft_document")
        if self.draft is None or document is None or self.fields["draft_document"].disabled:
            return cleaned
        # The draft's document carries the name (saving the draft renames the
        # flow), so a rename here is a change of the draft too.
        renamed = "name" in self.changed_data and cleaned.get("name")
        if renamed:
            document["name"] = cleaned["name"]  # same key, same place
        if renamed or "draft_document" in self.changed_data:
            self.document_to_save = document
        return cleaned
