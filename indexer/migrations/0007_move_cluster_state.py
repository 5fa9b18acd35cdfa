"""Node, ServiceLease and Failover now belong to the cluster app (cluster 0001): state only, the tables stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('indexer', '0006_node_settings_result'),
        ('cluster', '0001_move_cluster_state'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(
                name='Failover',
            ),
            migrations.DeleteModel(
                name='Node',
            ),
            migrations.DeleteModel(
                name='ServiceLease',
            ),
        ]),
    ]
