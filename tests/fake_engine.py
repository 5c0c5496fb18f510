"""A stand-in external engine for tests: writes the callback token it was given to a file and exits.

The test then plays the engine through the API with that token (or stays silent, to let the
heartbeat time out). Run as `python tests/fake_engine.py <token file>` via AGORA_ENGINE_COMMAND.
"""
import os
import sys

with open(sys.argv[1] + ".tmp", "w") as handle:
    handle.write(os.environ["AGORA_CALLBACK_TOKEN"] + "\n" + os.environ["AGORA_EXPERIMENT_ID"])
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
