"""Evaluation: models under test meet the same simulated people, are judged, and are compared."""
