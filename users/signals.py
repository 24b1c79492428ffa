"""Signal hooks: a safety net of cache invalidation after any save or delete of a user, a profile or an OpenID
Connect client, and Celery task metrics; no business rules.

The owners of changes to a person (``users.services.people``, the monolith import) drop the cached views themselves,
and every entry point (API, admin, imports, commands) goes through them: ``test_user_cache_owners`` proves each with
these hooks disconnected. The hooks stay for writes outside any entry point (a ``Model.save()`` in a shell or a data
fix), whose prompt visibility ``test_service_api`` pins; they call the same owner of the keys (``user_invalidate``).
"""

from celery.signals import task_failure, task_retry, task_success, worker_ready
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from oauth2_provider.models import Application

from users import metrics
from users.cache import oidc_client_forget, user_invalidate
from users.models import AdminHOD, CustomUser, Staff, Student


@receiver(post_save, sender=CustomUser)
@receiver(post_delete, sender=CustomUser)
def _user_changed(sender, instance: CustomUser, **kwargs) -> None:
    user_invalidate(user_id=instance.pk)


@receiver(post_save, sender=AdminHOD)
@receiver(post_save, sender=Staff)
@receiver(post_save, sender=Student)
@receiver(post_delete, sender=AdminHOD)
@receiver(post_delete, sender=Staff)
@receiver(post_delete, sender=Student)
def _profile_changed(sender, instance, **kwargs) -> None:
    user_invalidate(user_id=instance.user_id)


@receiver(post_save, sender=Application)
@receiver(post_delete, sender=Application)
def _oidc_client_changed(sender, instance: Application, **kwargs) -> None:
    # The same net for OpenID Connect clients that authorization requests keep per process (users.cache).
    oidc_client_forget(instance.client_id)


@task_success.connect
def _task_succeeded(sender=None, **kwargs) -> None:
    metrics.TASKS.labels(task=getattr(sender, "name", "?"), outcome="success").inc()


@task_failure.connect
def _task_failed(sender=None, **kwargs) -> None:
    metrics.TASKS.labels(task=getattr(sender, "name", "?"), outcome="failure").inc()


@task_retry.connect
def _task_retried(sender=None, **kwargs) -> None:
    metrics.TASKS.labels(task=getattr(sender, "name", "?"), outcome="retry").inc()


@worker_ready.connect
def _serve_worker_metrics(**kwargs) -> None:
    """A Celery worker has no HTTP server: expose its task metrics on CELERY_METRICS_PORT (0 = off)."""
    from django.conf import settings

    if settings.CELERY_METRICS_PORT:
        metrics.worker_metrics_serve(port=settings.CELERY_METRICS_PORT)
