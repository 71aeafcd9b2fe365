"""The course site: `python -m book.build_site` (or `python3 tasks.py site`) builds it with Sphinx."""
