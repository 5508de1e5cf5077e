from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Maestra flows"
admin.site.site_title = "Maestra flows"
admin.site.index_title = "Campaign manager"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("maestra.api.urls")),
    # Public pages of the links in messages (confirm, unsubscribe, preferences).
    path("p/", include("channels.links")),
    # Email engagement tracking: the open pixel and the click redirects.
    path("t/", include("channels.tracking")),
]
