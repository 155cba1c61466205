"""Assessment: the judges that score a transcript against the rubric, and their calibration."""
