"""/api/: the REST API v1, its OpenAPI schema and docs, and a JSON 404 for
every other /api/ URL."""

from django.urls import include, path, re_path

from channels import api as channels_api
from channels import inbound_api as channels_inbound
from customers import api as customers_api
from flows.api import privacy as privacy_api
from flows.api import views as flows_api
from maestra.api.views import DocsView, SchemaView, not_found

v1 = [
    path("customers/<str:external_id>", customers_api.CustomerView.as_view(), name="customer"),
    path(
        "customers/<str:external_id>/activity",
        flows_api.CustomerActivityView.as_view(),
        name="customer-activity",
    ),
    path("customers/<str:external_id>/erase", privacy_api.CustomerEraseView.as_view(), name="customer-erase"),
    path(
        "customers/<str:external_id>/export", privacy_api.CustomerExportView.as_view(), name="customer-export"
    ),
    path("events", flows_api.EventsView.as_view(), name="events"),
    path("flows", flows_api.FlowListView.as_view(), name="flows"),
    path("flows/<int:flow_id>", flows_api.FlowDetailView.as_view(), name="flow"),
    path("flows/<int:flow_id>/document", flows_api.FlowDocumentView.as_view(), name="flow-document"),
    path("flows/<int:flow_id>/draft", flows_api.FlowDraftView.as_view(), name="flow-draft"),
    path("flows/<int:flow_id>/launch", flows_api.FlowLaunchView.as_view(), name="flow-launch"),
    path("flows/<int:flow_id>/test", flows_api.FlowTestView.as_view(), name="flow-test"),
    path("flows/<int:flow_id>/stop-test", flows_api.FlowStopTestView.as_view(), name="flow-stop-test"),
    path("flows/<int:flow_id>/pause", flows_api.FlowPauseView.as_view(), name="flow-pause"),
    path("flows/<int:flow_id>/resume", flows_api.FlowResumeView.as_view(), name="flow-resume"),
    path("flows/<int:flow_id>/archive", flows_api.FlowArchiveView.as_view(), name="flow-archive"),
    path("flows/<int:flow_id>/duplicate", flows_api.FlowDuplicateView.as_view(), name="flow-duplicate"),
    path("flows/<int:flow_id>/versions", flows_api.FlowVersionsView.as_view(), name="flow-versions"),
    path("flows/<int:flow_id>/stats", flows_api.FlowStatsView.as_view(), name="flow-stats"),
    path(
        "flows/<int:flow_id>/audience-preview",
        flows_api.FlowAudiencePreviewView.as_view(),
        name="flow-audience-preview",
    ),
    path("templates", channels_api.TemplateListView.as_view(), name="templates"),
    path("templates/<slug:slug>", channels_api.TemplateDetailView.as_view(), name="template"),
    path(
        "templates/<slug:slug>/send-test",
        channels_api.TemplateSendTestView.as_view(),
        name="template-send-test",
    ),
    path("segments", customers_api.SegmentListView.as_view(), name="segments"),
    path("segments/<slug:slug>", customers_api.SegmentDetailView.as_view(), name="segment"),
    path("segments/<slug:slug>/members", customers_api.SegmentMembersView.as_view(), name="segment-members"),
    path("promo-pools", customers_api.PromoPoolListView.as_view(), name="promo-pools"),
    path("promo-pools/<slug:slug>", customers_api.PromoPoolDetailView.as_view(), name="promo-pool"),
    path("promo-pools/<slug:slug>/codes", customers_api.PromoCodesView.as_view(), name="promo-codes"),
]

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
