"""Fuzzing the API with schemathesis against the local stack (`make fuzz`, tests/test_fuzz.py)."""
