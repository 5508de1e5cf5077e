from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

admin.site.site_header = "Maestra flows"
admin.site.site_title = "Maestra flows"
admin.site.index_title = "Campaign manager"

urlpatterns = [
    # The words of the admin's scripts (gettext() in JS), translated like the
    # templates'. Before admin/ so the admin's own routes do not take it.
    path(
        "admin/jsi18n/maestra/",
        JavaScriptCatalog.as_view(packages=["flows", "channels", "customers"]),
        name="maestra-jsi18n",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("maestra.api.urls")),
    # Public pages of the links in messages (confirm, unsubscribe, preferences).
    path("p/", include("channels.links")),
    # Email engagement tracking: the open pixel and the click redirects.
    path("t/", include("channels.tracking")),
]
