"""Runner names are stored up to the cap callers may send (RUNNER_NAME_MAX, 200); PostgreSQL refused over 100."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('indexer', '0007_move_cluster_state'),
    ]

    operations = [
        migrations.AlterField(
            model_name='runhistory',
            name='runner',
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name='runnerrecord',
            name='name',
            field=models.CharField(max_length=200, primary_key=True, serialize=False),
        ),
    ]
