from django.urls import path

from kws_admin import backup_views

urlpatterns = [
    path("", backup_views.backup_restore_page, name="backup_restore"),
    path("download/", backup_views.backup_download, name="backup_download"),
    path("restore/", backup_views.backup_restore_preview, name="backup_restore_preview"),
    path("restore/confirm/", backup_views.backup_restore_confirm, name="backup_restore_confirm"),
    path("restore/cancel/", backup_views.backup_restore_cancel, name="backup_restore_cancel"),
]
