from django.apps import AppConfig


class QualityConfig(AppConfig):
    """Can these labels be trusted: agreement, annotator reliability, the noise
    audit and the review queue (DESIGN §6). Sits above annotate and models_svc."""

    name = "quality"
