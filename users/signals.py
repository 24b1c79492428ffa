"""Cache invalidation hooks: no business rules here, only keeping caches honest after writes."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from users.models import CustomUser
from users.selectors import user_snapshot_invalidate


@receiver(post_save, sender=CustomUser)
@receiver(post_delete, sender=CustomUser)
def _user_changed(sender, instance: CustomUser, **kwargs) -> None:
    user_snapshot_invalidate(user_id=instance.pk)
