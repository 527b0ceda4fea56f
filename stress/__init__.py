"""The multi-process stress and crash harness (``python -m stress``): an application of
aioreftable's public API that proves nothing acknowledged is lost (docs/stress.md)."""
