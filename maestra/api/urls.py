"""/api/: the REST API v1, its OpenAPI schema and docs, and a JSON 404 for
every other /api/ URL."""

from django.urls import include, path, re_path

from channels import api as channels_api
from channels import inbound_api as channels_inbound
from customers import api as customers_api
from flows.api import privacy as privacy_api
from flows.api import views as flows_api
from maestra.api.views import DocsView, SchemaView, not_found

# (URL, view, URL name), in the order Django tries them.
V1_ROUTES = [
    ("customers/<str:external_id>", customers_api.CustomerView, "customer"),
    ("customers/<str:external_id>/activity", flows_api.CustomerActivityView, "customer-activity"),
    ("customers/<str:external_id>/erase", privacy_api.CustomerEraseView, "customer-erase"),
    ("customers/<str:external_id>/export", privacy_api.CustomerExportView, "customer-export"),
    ("events", flows_api.EventsView, "events"),
    ("flows", flows_api.FlowListView, "flows"),
    ("flows/<int:flow_id>", flows_api.FlowDetailView, "flow"),
    ("flows/<int:flow_id>/document", flows_api.FlowDocumentView, "flow-document"),
    ("flows/<int:flow_id>/draft", flows_api.FlowDraftView, "flow-draft"),
    *(
        (f"flows/<int:flow_id>/{action}", view, f"flow-{action}")
        for action, view in flows_api.ACTION_VIEWS.items()
    ),
    ("flows/<int:flow_id>/versions", flows_api.FlowVersionsView, "flow-versions"),
    ("flows/<int:flow_id>/stats", flows_api.FlowStatsView, "flow-stats"),
    ("flows/<int:flow_id>/audience-preview", flows_api.FlowAudiencePreviewView, "flow-audience-preview"),
    ("templates", channels_api.TemplateListView, "templates"),
    ("templates/<slug:slug>", channels_api.TemplateDetailView, "template"),
    ("templates/<slug:slug>/send-test", channels_api.TemplateSendTestView, "template-send-test"),
    ("segments", customers_api.SegmentListView, "segments"),
    ("segments/<slug:slug>", customers_api.SegmentDetailView, "segment"),
    ("segments/<slug:slug>/members", customers_api.SegmentMembersView, "segment-members"),
    ("promo-pools", customers_api.PromoPoolListView, "promo-pools"),
    ("promo-pools/<slug:slug>", customers_api.PromoPoolDetailView, "promo-pool"),
    ("promo-pools/<slug:slug>/codes", customers_api.PromoCodesView, "promo-codes"),
]
v1 = [path(url, view.as_view(), name=name) for url, view, name in V1_ROUTES]

app_name = "api"
urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
    # Providers' bounces, complaints and SMS replies: authenticated by the
    # shared secret, not by an API key, so it stays out of `v1` (whose every
    # endpoint takes a key); same /api/v1/ address (docs/consent.md).
    path(
        "v1/inbound/provider-events",
        channels_inbound.ProviderEventsView.as_view(),
        name="inbound-provider-events",
    ),
    path("v1/", include(v1)),
    # Anything else under /api/: a JSON 404, never Django's HTML page ([\s\S], not ".":
    # a path holding a newline, %0A, must not slip through to it either).
    re_path(r"^[\s\S]*$", not_found),
]
