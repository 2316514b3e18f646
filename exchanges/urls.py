from django.urls import path

from . import views

app_name = "exchanges"

urlpatterns = [
    path("", views.connection_list, name="connection-list"),
    path("add/", views.connection_add, name="connection-add"),
    path("add/<slug:venue_id>/", views.connection_add_venue, name="connection-add-venue"),
    path("help/<slug:venue_id>-api-key/", views.help_api_key, name="help-api-key"),
    path("<int:pk>/", views.connection_detail, name="connection-detail"),
    path("<int:pk>/row/", views.connection_row, name="connection-row"),
    path("<int:pk>/holdings.csv", views.connection_holdings_csv, name="connection-holdings-csv"),
    path("<int:pk>/verification/", views.connection_verification, name="connection-verification"),
    path("<int:pk>/refresh/", views.connection_refresh, name="connection-refresh"),
    path("<int:pk>/rename/", views.connection_rename, name="connection-rename"),
    path("<int:pk>/replace/", views.connection_replace, name="connection-replace"),
    path("<int:pk>/replacement/", views.connection_replacement, name="connection-replacement"),
    path(
        "<int:pk>/replacement/dismiss/",
        views.connection_replacement_dismiss,
        name="connection-replacement-dismiss",
    ),
    path("<int:pk>/remove/", views.connection_remove, name="connection-remove"),
    path("<int:pk>/dismiss/", views.connection_dismiss, name="connection-dismiss"),
]
