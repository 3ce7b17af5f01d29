"""DecodeLab's web side: Django apps, REST API and the result writer. Never imports torch."""
