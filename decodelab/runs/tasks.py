"""The web side's half of the pipeline: workers report here, on the `results` queue."""

from celery import shared_task

from decodelab.runs import services


@shared_task(name="runs.mark_running", acks_late=True, ignore_result=True)
def mark_running(run_id: str, attempt: int, worker: str, started_at: float, task: str | None = None) -> None:
    services.run_mark_running(run_id=run_id, attempt=attempt, worker=worker, started_at=started_at, task=task)


@shared_task(name="runs.heartbeat", ignore_result=True)
def heartbeat(run_id: str, task: str, at: float) -> None:
    services.run_heartbeat(run_id=run_id, task=task, at=at)


@shared_task(name="runs.store_result", acks_late=True, ignore_result=True)
def store_result(result: dict) -> None:
    services.run_store_result(result=result)
