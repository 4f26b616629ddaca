"""Seeing a run: its RunStats sampled once a second (samples.py, sampler.py), the live
terminal view (live.py, screen.py), the HTML report (report.py, charts.py) and
`connector top` for a fleet (top.py, scrape.py)."""
