"""Bundled data: installed as the package coach_data.prompts (see coach_data/__init__.py)."""
