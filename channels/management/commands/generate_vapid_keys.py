import base64

from cryptography.hazmat.primitives import serialization
from django.core.management.base import BaseCommand
from py_vapid import Vapid


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Command(BaseCommand):
    help = (
        "Print a new VAPID key pair for web push: the private key for "
        "MAESTRA_VAPID_PRIVATE_KEY, the public key for the browser's "
        "pushManager.subscribe({applicationServerKey})."
    )

    def handle(self, *args, **options):
        vapid = Vapid()
        vapid.generate_keys()
        private_raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
        public_raw = vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.stdout.write(f"MAESTRA_VAPID_PRIVATE_KEY={b64url(private_raw)}")
        self.stdout.write(f"MAESTRA_VAPID_PUBLIC_KEY={b64url(public_raw)}")
