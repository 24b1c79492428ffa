"""Password reset and e-mail verification endpoints: parse, call an account service, answer."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from users.api.schema import PasswordField, errors
from users.api.serializers import DetailSerializer, StrictInputSerializer, user_max_length
from users.api.throttles import CounterThrottle
from users.api.views import PublicAPIView
from users.services import account

RESET_REQUESTED = "If an account uses this address, a password reset link has been sent to it."
VERIFICATION_REQUESTED = "If an unverified account uses this address, a new confirmation link has been sent to it."


class _AddressThrottle(CounterThrottle):
    """Limits e-mails per target (address or account), not per client: it stops mail-bombing one inbox
    without locking out a whole school behind one NAT address, and answers the same for any address."""

    def get_cache_key(self, request, view) -> str | None:
        user_pk = getattr(getattr(request, "user", None), "pk", None)
        if user_pk:
            ident = f"user:{user_pk}"
        else:
            email = request.data.get("email") if isinstance(request.data, dict) else None
            if not isinstance(email, str) or not email.strip():
                return None  # invalid input: the serializer answers 400
            ident = f"email:{email.strip().lower()}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PasswordResetThrottle(_AddressThrottle):
    scope = "password_reset"

    def get_rate(self) -> str:
        return settings.THROTTLE_PASSWORD_RESET_RATE


class VerificationEmailThrottle(_AddressThrottle):
    scope = "verify_email_resend"

    def get_rate(self) -> str:
        return settings.THROTTLE_VERIFICATION_EMAIL_RATE


class EmailInputSerializer(StrictInputSerializer):
    email = serializers.EmailField(max_length=user_max_length("email"))


class PasswordResetConfirmInputSerializer(StrictInputSerializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = PasswordField()
    confirm_password = PasswordField(help_text="The same as new_password.")


class VerifyEmailInputSerializer(StrictInputSerializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)


class ResendInputSerializer(StrictInputSerializer):
    email = serializers.EmailField(max_length=254, required=False, help_text="Only without a bearer token.")


class PasswordResetRequestView(PublicAPIView):
    throttle_classes = [PasswordResetThrottle]

    @extend_schema(
        tags=["account"],
        summary="Ask for a password reset e-mail",
        description="Always 202 with the same body, whether or not an account uses the address.",
        request=EmailInputSerializer,
        responses={202: DetailSerializer, **errors(400, 415, 429)},
    )
    def post(self, request):
        data = EmailInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account.password_reset_request(email=data.validated_data["email"])
        return Response({"detail": RESET_REQUESTED}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicAPIView):
    @extend_schema(
        tags=["account"],
        summary="Set a new password from a reset or invitation link",
        description="The link works once and expires; every session of the user ends.",
        request=PasswordResetConfirmInputSerializer,
        responses={200: DetailSerializer, **errors(400, 415, 503)},
    )
    def post(self, request):
        data = PasswordResetConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account.password_reset_confirm(**data.validated_data)
        return Response({"detail": "Your password has been set; log in with it."})


class VerifyEmailView(PublicAPIView):
    @extend_schema(
        tags=["account"],
        summary="Confirm the e-mail address from a verification link",
        request=VerifyEmailInputSerializer,
        responses={200: DetailSerializer, **errors(400, 415)},
    )
    def post(self, request):
        data = VerifyEmailInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account.email_verify(**data.validated_data)
        return Response({"detail": "Your e-mail address is confirmed."})


class VerifyEmailResendView(APIView):
    """With a bearer token: the caller's account. Without one: by address, answered like a reset request."""

    permission_classes = [AllowAny]
    throttle_classes = [VerificationEmailThrottle]

    @extend_schema(
        tags=["account"],
        summary="Send a new e-mail confirmation link",
        description=(
            "Bearer: to the caller (a no-op if already confirmed). Anonymous, with `email`: always 202 with the "
            "same body (for accounts that may not log in before confirming, see REQUIRE_EMAIL_VERIFICATION)."
        ),
        request=ResendInputSerializer,
        responses={202: DetailSerializer, **errors(400, 401, 403, 415, 429)},
    )
    def post(self, request):
        data = ResendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if getattr(request.user, "is_service", False):
            raise exceptions.PermissionDenied("This endpoint is for people, not services.")
        if request.user is not None:
            if "email" in data.validated_data:
                raise serializers.ValidationError({"email": ["Not allowed with a bearer token."]})
            queued = account.email_verification_resend(user=request.user)
            detail = "A new confirmation link has been sent." if queued else "Your e-mail address is already confirmed."
            return Response({"detail": detail}, status=status.HTTP_202_ACCEPTED)
        if "email" not in data.validated_data:
            raise serializers.ValidationError({"email": ["This field is required without a bearer token."]})
        account.email_verification_request(email=data.validated_data["email"])
        return Response({"detail": VERIFICATION_REQUESTED}, status=status.HTTP_202_ACCEPTED)
