from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="WakeFlag",
            fields=[
                ("target", models.CharField(max_length=50, primary_key=True, serialize=False)),
                ("requested_at", models.DateTimeField()),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"db_table": "maestra_wake_flag"},
        ),
    ]
