"""Quality: stored reports, the noise audit (per-comparison μ and σ of the ensemble) and the review queue."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('annotate', '0008_label_source_adjudicated'),
        ('models_svc', '0003_exploration_rate_on_project'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='NoiseAudit',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('error', models.TextField(blank=True)),
                ('cancel_requested', models.BooleanField(default=False)),
                ('celery_id', models.CharField(blank=True, max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=16)),
                ('progress', models.FloatField(default=0.0)),
                ('summary', models.JSONField(blank=True, default=dict, help_text='counts, thresholds and the histogram of μ')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('model_version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='models_svc.modelversion')),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='noise_audits', to='annotate.project')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='QualityReport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('error', models.TextField(blank=True)),
                ('cancel_requested', models.BooleanField(default=False)),
                ('celery_id', models.CharField(blank=True, max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=16)),
                ('progress', models.FloatField(default=0.0)),
                ('result', models.JSONField(blank=True, default=dict, help_text='agreement, agreement by week, label mix, annotators')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='quality_reports', to='annotate.project')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='PairScore',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('mu', models.FloatField()),
                ('sigma', models.FloatField()),
                ('audit', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pairs', to='quality.noiseaudit')),
                ('comparison', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.comparison')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('audit', 'comparison'), name='pair_score_once_per_audit')],
            },
        ),
        migrations.CreateModel(
            name='ReviewItem',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reasons', models.JSONField(blank=True, default=list, help_text='likely_flipped, ambiguous_pair, low_agreement, annotator_flag')),
                ('evidence', models.FloatField(default=0.0, help_text='Higher first in the queue.')),
                ('mu', models.FloatField(blank=True, null=True)),
                ('sigma', models.FloatField(blank=True, null=True)),
                ('agreement', models.FloatField(blank=True, help_text='Share of labels giving the most common answer.', null=True)),
                ('status', models.CharField(choices=[('open', 'Open'), ('adjudicated', 'Adjudicated'), ('more_labels', 'More Labels'), ('ambiguous', 'Ambiguous')], default='open', max_length=16)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('note', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('comparison', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='review_item', to='annotate.comparison')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='review_items', to='annotate.project')),
            ],
            options={
                'ordering': ['-evidence', 'id'],
                'indexes': [models.Index(fields=['project', 'status', '-evidence'], name='review_queue_idx')],
            },
        ),
    ]
