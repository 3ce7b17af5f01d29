"""DecodeLab's worker side: decoders, model runtime and the Celery task. Never imports Django."""
