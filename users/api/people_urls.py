"""URLs of students, staff, HODs, users/ and user/{id}/ (issue 3), included under /api/v1/users/."""

urlpatterns: list = []
