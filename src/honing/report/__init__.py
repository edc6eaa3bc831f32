"""Reports: plots (and, later, the HTML model card)."""
