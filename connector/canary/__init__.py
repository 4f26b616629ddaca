"""The live canary (`verify:` on a kafka output): config.py, kafka.py."""
