"""Scores per attention head from capture datasets, their stability, and clusters of heads."""
