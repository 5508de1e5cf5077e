from django.apps import AppConfig
from django.core import checks


class KernelConfig(AppConfig):
    # The kernel itself (maestra/): no models; here for what it registers
    # with Django at start, such as the migration check `migrate` runs.
    name = "maestra"
    label = "maestra"
    verbose_name = "Maestra kernel"

    def ready(self) -> None:
        # Imported here: the check reads migrations, which wants the app
        # registry that is being filled when this module is imported.
        from maestra import pg_timestamps
        from maestra.migration_checks import partly_applied_squashes

        checks.register(partly_applied_squashes, checks.Tags.database)
        pg_timestamps.install()
