"""The OpenID Connect provider: the protocol glue around django-oauth-toolkit and what this service adds."""
