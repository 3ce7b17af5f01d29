"""Browser pages of the workbench (htmx)."""
