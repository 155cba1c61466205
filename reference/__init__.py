"""Bundled data: installed as the package coach_data.reference (see coach_data/__init__.py)."""
