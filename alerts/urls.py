from django.urls import path

from . import views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_settings, name="settings"),
    path("test/<slug:channel>/", views.alert_test, name="test"),
    path("deliveries/<int:pk>/", views.alert_test_result, name="test-result"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
