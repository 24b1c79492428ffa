"""URLs of students, staff, HODs, users/ and user/{id}/ included under /api/v1/users/."""

from django.urls import path

from users.api import people

urlpatterns: list = [
    path("students/", people.StudentListView.as_view(), name="students"),
    path("students/import/", people.StudentImportView.as_view(), name="students-import"),
    path("students/<int:pk>/", people.StudentDetailView.as_view(), name="student-detail"),
    path("staff/", people.StaffListView.as_view(), name="staff"),
    path("staff/import/", people.StaffImportView.as_view(), name="staff-import"),
    path("staff/<int:pk>/", people.StaffDetailView.as_view(), name="staff-detail"),
    path("admins/", people.AdminHODListView.as_view(), name="admins"),
    path("admins/<int:pk>/", people.AdminHODDetailView.as_view(), name="admin-detail"),
    path("users/", people.UserListView.as_view(), name="user-list"),
    path("user/<int:pk>/", people.UserDetailView.as_view(), name="user-detail"),
]
