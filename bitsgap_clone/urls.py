from django.contrib import admin
from django.urls import include, path

from . import views

# A database outage answers 503 "back in a moment" with Retry-After (see views.server_error).
handler500 = "bitsgap_clone.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("settings/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("exchanges/", include("exchanges.urls")),
    path("alerts/", include("alerts.urls")),
]
