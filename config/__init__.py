"""Bundled data: installed as the package coach_data.config (see coach_data/__init__.py)."""
