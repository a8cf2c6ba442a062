from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "djangoapp.notes"
    label = "notes"
