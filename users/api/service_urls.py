"""URLs of service tokens, introspection, bulk lookups and revocations (issue 4), included under /api/v1/users/."""

urlpatterns: list = []
