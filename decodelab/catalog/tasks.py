from celery import shared_task

from decodelab.catalog import services


@shared_task(name="catalog.models_report", acks_late=True, ignore_result=True)
def models_report(reporter: str, models: list) -> None:
    services.models_report(reporter=reporter, models=models)
