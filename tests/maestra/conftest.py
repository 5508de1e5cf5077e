"""A flow in any status, with the SPEC §11 document and its templates (the
flows tests' fixtures), for the page-wide checks here."""

from tests.flows.conftest import flow_in, invalid_document, spec_document, templates  # noqa: F401
