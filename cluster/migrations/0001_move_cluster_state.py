"""The node registry, the lease and the failover history move here from the indexer app: state only.

The tables keep their names (db_table), so the database is not touched; indexer 0007 drops the same models from
the indexer's state.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('indexer', '0006_node_settings_result'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='Failover',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('at', models.DateTimeField()),
                    ('from_node', models.CharField(blank=True, max_length=200)),
                    ('to_node', models.CharField(max_length=200)),
                    ('token', models.BigIntegerField()),
                    ('reason', models.TextField()),
                ],
                options={
                    'db_table': 'indexer_failover',
                    'ordering': ['-at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='Node',
                fields=[
                    ('name', models.CharField(max_length=200, primary_key=True, serialize=False)),
                    ('kind', models.CharField(choices=[('service', 'Service'), ('web', 'Web')], max_length=16)),
                    ('host', models.CharField(blank=True, max_length=255)),
                    ('ip', models.CharField(blank=True, max_length=64)),
                    ('endpoint', models.CharField(blank=True, max_length=300)),
                    ('endpoint_override', models.CharField(blank=True, max_length=300)),
                    ('version', models.CharField(blank=True, max_length=32)),
                    ('key_fingerprint', models.CharField(blank=True, max_length=32)),
                    ('settings_version', models.BigIntegerField(default=0)),
                    ('settings_applied_at', models.DateTimeField(blank=True, null=True)),
                    ('settings_result', models.CharField(blank=True, choices=[('ok', 'Ok'), ('refused', 'Refused')], max_length=16)),
                    ('settings_problem', models.TextField(blank=True)),
                    ('serves_endpoint', models.CharField(blank=True, max_length=300)),
                    ('refused_endpoint', models.CharField(blank=True, max_length=300)),
                    ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('heartbeat_at', models.DateTimeField(default=django.utils.timezone.now)),
                ],
                options={
                    'db_table': 'indexer_node',
                },
            ),
            migrations.CreateModel(
                name='ServiceLease',
                fields=[
                    ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                    ('holder', models.CharField(blank=True, max_length=200)),
                    ('token', models.BigIntegerField(default=0)),
                    ('acquired_at', models.DateTimeField(blank=True, null=True)),
                    ('renewed_at', models.DateTimeField(blank=True, null=True)),
                    ('expires_at', models.DateTimeField(blank=True, null=True)),
                    ('released', models.BooleanField(default=False)),
                ],
                options={
                    'db_table': 'indexer_servicelease',
                },
            ),
        ]),
    ]
