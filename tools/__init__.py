"""The course's maintenance commands (re-execute and measure the notebooks, the student
edition, publishing), run through `python3 tasks.py ...` or `python -m tools.NAME`."""
