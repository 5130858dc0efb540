from django.apps import AppConfig


class DataioConfig(AppConfig):
    """Datasets in and out: import and export jobs, their pages, API, commands and
    the demo (DESIGN §7). Sits above quality, whose agreement service the dataset
    card states; nothing but preflab imports it."""

    name = "dataio"
