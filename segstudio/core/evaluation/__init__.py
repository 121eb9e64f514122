"""Scoring: confusion matrices, error maps, comparisons of labels against a prediction source, reports."""
