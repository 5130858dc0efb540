"""Adjudicated: a researcher's final answer on a reviewed comparison, a label source of its own."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0007_annotator_pause'),
    ]

    operations = [
        migrations.AlterField(
            model_name='judgment',
            name='source',
            field=models.CharField(choices=[('human', 'Human'), ('imported', 'Imported'), ('derived', 'Derived'), ('model', 'Model'), ('adjudicated', 'Adjudicated')], default='human', max_length=16),
        ),
        migrations.AlterField(
            model_name='ranking',
            name='source',
            field=models.CharField(choices=[('human', 'Human'), ('imported', 'Imported'), ('derived', 'Derived'), ('model', 'Model'), ('adjudicated', 'Adjudicated')], default='human', max_length=16),
        ),
        migrations.AlterField(
            model_name='rating',
            name='source',
            field=models.CharField(choices=[('human', 'Human'), ('imported', 'Imported'), ('derived', 'Derived'), ('model', 'Model'), ('adjudicated', 'Adjudicated')], default='human', max_length=16),
        ),
    ]
