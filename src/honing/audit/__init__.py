"""Audits of data and models: quality checks, fairness measures, and the gates that stop a run."""
