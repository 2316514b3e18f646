from django.urls import path

from . import views

app_name = "exchanges"

urlpatterns = [
    path("", views.connection_list, name="connection-list"),
    path("add/", views.connection_add, name="connection-add"),
    path("add/htx/", views.connection_add_htx, name="connection-add-htx"),
    path("<int:pk>/verification/", views.connection_verification, name="connection-verification"),
    path("<int:pk>/dismiss/", views.connection_dismiss, name="connection-dismiss"),
]
