from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """Our own user model from day one, so fields can be added without a painful swap later.

    People sign in with their email address (django-allauth); ``username`` stays as Django's
    internal identifier.
    """
