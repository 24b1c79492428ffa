"""A small Django site signing people in with mozilla-django-oidc: a school web app, as a relying party."""
