"""Small widgets, one per module, each drawing one thing the screens compose."""
