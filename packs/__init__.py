"""Bundled data: installed as the package coach_data.packs (see coach_data/__init__.py)."""
