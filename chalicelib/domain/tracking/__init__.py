"""Experiment tracking: experiments, runs, metric series, artifacts (`/api/v1/experiments`)."""
