"""URLs of password reset and e-mail verification (issue 5), included under /api/v1/users/."""

urlpatterns: list = []
