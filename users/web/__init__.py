"""The single sign-on pages: sign-in, second factor, consent, and the OpenID Connect endpoints around them."""
