from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.settings_view, name="settings"),
    path("security-log/", views.security_log, name="security-log"),
    path("delete/", views.delete_account, name="delete"),
]
