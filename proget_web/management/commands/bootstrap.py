"""`manage.py bootstrap`: what a first run needs — the Admin user (password printed once) and the messenger key."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from indexer.messenger_config import messenger_settings

ADMIN_USERNAME = "Admin"


class Command(BaseCommand):
    help = "Prepare a fresh installation: create the Admin user and the messenger key if missing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="the URL to print for logging in")

    def handle(self, *args: object, url: str, **options: object) -> None:
        users = get_user_model()
        password = secrets.token_urlsafe(12)
        user, created = users.objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        fingerprint = messenger_settings().fingerprint
        self.stdout.write(f"Open {url} in your browser.")
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Log in as {ADMIN_USERNAME} with password: {password}")
            self.stdout.write("(shown only this once; change it with: python manage.py changepassword Admin)")
        else:
            self.stdout.write(
                f"Log in as {ADMIN_USERNAME} with the password printed on first run "
                "(forgot it? python manage.py changepassword Admin)"
            )
        self.stdout.write(f"Messenger key fingerprint: {fingerprint}")
