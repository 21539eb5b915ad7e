"""Command-line front ends (console scripts registered in setup.py)."""
