"""Operator tools run from a workstation against a deployed stack; never packaged into the Lambdas."""
