"""HTTP clients for sibling services (academic, notification, attendance) and a token verifier for them."""
