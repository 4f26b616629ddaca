"""Events: what the user's script makes of each timestamp.

script.py  load the script once, call produce(), check what it returns, count its errors
"""
