"""ε on the project: the queue reads it from the row it already holds (the value is
copied from models_svc.RewardSettings in models_svc 0003)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0005_fewer_indexes_on_imported_rows'),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='exploration_rate',
            field=models.FloatField(default=0.0, help_text='ε: the share of pairwise tasks drawn uniformly from the open pool instead of by priority.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)]),
        ),
    ]
