from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("settings/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("exchanges/", include("exchanges.urls")),
]
