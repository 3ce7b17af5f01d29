"""Browser pages: researchers' session pages (sessions.py) and the annotators' blind rating pages (rating.py)."""
