"""ApiKey now belongs to the api_keys app (api_keys 0001): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('api_keys', '0001_move_api_keys_state'),
        ('api', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(
                name='ApiKey',
            ),
        ]),
    ]
