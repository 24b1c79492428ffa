"""URLs of password reset and e-mail verification included under /api/v1/users/."""

from django.urls import path

from users.api import account

urlpatterns = [
    path("password-reset/", account.PasswordResetRequestView.as_view(), name="password-reset"),
    path("password-reset/confirm/", account.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("verify-email/", account.VerifyEmailView.as_view(), name="verify-email"),
    path("verify-email/resend/", account.VerifyEmailResendView.as_view(), name="verify-email-resend"),
]
